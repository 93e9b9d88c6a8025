package pluginclient_test

import (
	"context"
	"testing"

	"github.com/berthgw/berth/sdk"
	"github.com/berthgw/berth/sdk/internal/fakes"
	"github.com/berthgw/berth/sdk/plugintest"
)

func TestSmokeInProcess(t *testing.T) {
	c := plugintest.StartInProcess(t, fakes.New().Options())
	c.Configure(t, []byte(`{}`))
	n, err := c.Notifier()
	if err != nil {
		t.Fatal(err)
	}
	d, err := n.Send(context.Background(), sdk.Message{Channel: "memory", Subject: "hi", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v %+v", d, c.Events.Events())
}
