package lifecycle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// recorder notes every start and stop, in order.
type recorder struct{ events []string }

func (r *recorder) component(name string, failStart, failStop bool) Component {
	return Hooks{
		OnStart: func(context.Context) error {
			if failStart {
				r.events = append(r.events, "fail "+name)
				return errors.New("boom")
			}
			r.events = append(r.events, "start "+name)
			return nil
		},
		OnStop: func(context.Context) error {
			r.events = append(r.events, "stop "+name)
			if failStop {
				return errors.New("stuck")
			}
			return nil
		},
	}
}

func TestSequence(t *testing.T) {
	tests := []struct {
		name      string
		failStart string // the component whose Start fails
		failStop  string // the component whose Stop fails
		want      []string
		wantErr   string // in Start's error, or Stop's when Start succeeds
	}{
		{name: "all start, stop in reverse",
			want: []string{"start a", "start b", "start c", "start d", "stop d", "stop c", "stop b", "stop a"}},
		{name: "first fails, nothing to stop", failStart: "a",
			want: []string{"fail a"}, wantErr: "start a: boom"},
		{name: "middle fails, earlier stop in reverse", failStart: "c",
			want: []string{"start a", "start b", "fail c", "stop b", "stop a"}, wantErr: "start c: boom"},
		{name: "last fails", failStart: "d",
			want: []string{"start a", "start b", "start c", "fail d", "stop c", "stop b", "stop a"}, wantErr: "start d: boom"},
		{name: "a failing stop does not skip the rest", failStart: "d", failStop: "b",
			want: []string{"start a", "start b", "start c", "fail d", "stop c", "stop b", "stop a"}, wantErr: "stop b: stuck"},
		{name: "stop errors are returned", failStop: "a",
			want: []string{"start a", "start b", "start c", "start d", "stop d", "stop c", "stop b", "stop a"}, wantErr: "stop a: stuck"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			var s Sequence
			for _, name := range []string{"a", "b", "c", "d"} {
				s.Add(name, r.component(name, name == tt.failStart, name == tt.failStop))
			}
			err := s.Start(context.Background())
			if tt.failStart == "" {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				err = s.Stop(context.Background())
			}
			if !slices.Equal(r.events, tt.want) {
				t.Fatalf("events %q, want %q", r.events, tt.want)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			// Stopping again stops nothing twice.
			n := len(r.events)
			if err := s.Stop(context.Background()); err != nil || len(r.events) != n {
				t.Fatalf("second Stop: %v, events %q", err, r.events[n:])
			}
		})
	}
}

func TestLoopStopsAndWaits(t *testing.T) {
	exited := false
	l := NewLoop(func(ctx context.Context) {
		<-ctx.Done()
		exited = true
	})
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel() // the start context ending does not end the loop
	// Stop waits for the loop even when its own context has ended.
	stopCtx, stop := context.WithCancel(context.Background())
	stop()
	if err := l.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if !exited {
		t.Fatal("Stop returned before the loop did")
	}
}
