package main

import (
	"context"
	"fmt"
)

// devServe runs until Ctrl-C. The daemon takes this place once it exists.
func devServe(ctx context.Context, dsn, demoKey string) error {
	fmt.Println("Ready. Press Ctrl-C to stop.")
	<-ctx.Done()
	return nil
}
