package main

import "context"

// benchProjection measures the projection figures. (Not written yet.)
func benchProjection(ctx context.Context, env *Env) ([]Row, error) { return nil, nil }
