package bench

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/migrate"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestZZProfLifecycle(t *testing.T) {
	if os.Getenv("ZZPROF") == "" {
		t.Skip()
	}
	ctx := context.Background()
	e := &env{opts: Options{Workers: 8, Clients: 8, Phase: 6 * time.Second, Log: os.Stderr}, rep: &Report{}}
	e.opts.defaults()
	dsn, cleanup, err := e.database(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	e.dsn = dsn
	if _, err := migrate.Up(ctx, dsn, nil); err != nil {
		t.Fatal(err)
	}
	e.pool, err = database.Open(ctx, dsn, database.Options{MaxConns: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.pool.Close()
	for i := 0; i < 2; i++ {
		if err := e.lifecycleSQL(ctx); err != nil {
			t.Fatal(err)
		}
		v, _ := e.rep.Get("lifecycle_sql")
		fmt.Printf("sql %.0f\n", v)
		c0, w0 := cpuNow(), time.Now()
		if err := e.lifecycle(ctx); err != nil {
			t.Fatal(err)
		}
		v, _ = e.rep.Get("lifecycle")
		fmt.Printf("go %.0f   go cpu %.1f%% of one core\n", v, 100*float64(cpuNow()-c0)/float64(time.Since(w0)))
		e.rep = &Report{}
	}
}
