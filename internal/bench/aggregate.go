package main

import "context"

// benchAggregate measures the aggregate figures. (Not written yet.)
func benchAggregate(ctx context.Context, env *Env) ([]Row, error) { return nil, nil }
