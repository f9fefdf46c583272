package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// profile explains what bounds a phase: how busy the machine's CPUs were
// (/proc/stat, every process: Postgres and this one), and what the
// database's active client backends were doing, sampled from
// pg_stat_activity every 10 ms: on CPU (no wait event), waiting on a
// heavyweight lock (rows, transactions, and the commit lock of NOTIFY), on
// an LWLock (WALWrite: waiting for a WAL flush), or on I/O.
type profile struct {
	cpuStart              cpuTimes
	stop                  func()
	done                  chan struct{}
	mu                    sync.Mutex
	samples               int // backend-samples
	cpu, lock, lwlock, io int
	events                map[string]int // "type:event" of waiting samples
}

type cpuTimes struct{ busy, total uint64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var t cpuTimes
	for i, s := range f[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t
}

// startProfile samples until finish. The sampler stops between its
// statements, never by canceling one: a pgx connection whose statement was
// canceled mid-flight can fail its next use (jackc/pgx#1800, #2100), and
// this one goes back to the pool the phases share. A connection whose
// statement failed is closed, not returned.
func startProfile(ctx context.Context, pool *pgxpool.Pool) *profile {
	stop := make(chan struct{})
	p := &profile{cpuStart: readCPU(), stop: func() { close(stop) }, done: make(chan struct{}), events: map[string]int{}}
	go func() {
		defer close(p.done)
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return
		}
		defer conn.Release()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rows, err := conn.Query(ctx, `select coalesce(wait_event_type, ''), coalesce(wait_event, '') from pg_stat_activity
				where state = 'active' and backend_type = 'client backend'
				  and pid <> pg_backend_pid() and datname = current_database()`)
			if err != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
				return
			}
			p.mu.Lock()
			for rows.Next() {
				var w, ev string
				if rows.Scan(&w, &ev) != nil {
					continue
				}
				p.samples++
				if w != "" {
					p.events[w+":"+ev]++
				}
				switch w {
				case "":
					p.cpu++
				case "Lock":
					p.lock++
				case "LWLock":
					p.lwlock++
				case "IO":
					p.io++
				}
			}
			p.mu.Unlock()
			rows.Close()
			if rows.Err() != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
				return
			}
		}
	}()
	return p
}

// finish records <name>_cpu_busy_pct and the share of backend samples in
// each state.
func (p *profile) finish(e *env, name string) {
	p.stop()
	<-p.done
	end := readCPU()
	if d := end.total - p.cpuStart.total; d > 0 {
		e.rep.add(name+"_cpu_busy_pct", 100*float64(end.busy-p.cpuStart.busy)/float64(d), "%")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.samples == 0 {
		return
	}
	pct := func(n int) float64 { return 100 * float64(n) / float64(p.samples) }
	e.rep.add(name+"_db_on_cpu_pct", pct(p.cpu), "% of backend samples")
	e.rep.add(name+"_db_wait_lock_pct", pct(p.lock), "% of backend samples")
	e.rep.add(name+"_db_wait_lwlock_pct", pct(p.lwlock), "% of backend samples")
	e.rep.add(name+"_db_wait_io_pct", pct(p.io), "% of backend samples")
	type kv struct {
		k string
		n int
	}
	var top []kv
	for k, n := range p.events {
		top = append(top, kv{k, n})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].n > top[j].n })
	var parts []string
	for _, t := range top[:min(len(top), 4)] {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", t.k, pct(t.n)))
	}
	e.logf("  %s: top waits of active backends: %s", name, strings.Join(parts, ", "))
}
