package main

import "context"

// benchStore measures the store figures. (Not written yet.)
func benchStore(ctx context.Context, env *Env) ([]Row, error) { return nil, nil }
