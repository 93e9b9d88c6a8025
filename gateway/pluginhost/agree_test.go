package pluginhost

import (
	"testing"

	"github.com/berthgw/berth/sdk"
)

type agreeSMTP struct {
	Host string `json:"host" berth:"required"`
	Port int    `json:"port" berth:"min=1,max=65535,default=587"`
}

type agreeConfig struct {
	URL     string            `json:"url" berth:"required"`
	Timeout int               `json:"timeout_sec" berth:"min=1,max=60,default=10"`
	Ratio   float64           `json:"ratio" berth:"min=0.5"`
	Mode    string            `json:"mode" berth:"enum=a|b,default=a"`
	Name    string            `json:"name" berth:"min=2,max=3"`
	Tags    []string          `json:"tags" berth:"max=2"`
	Labels  map[string]string `json:"labels" berth:"max=1"`
	SMTP    *agreeSMTP        `json:"smtp"`
	Relays  []agreeSMTP       `json:"relays"`
	Extra   any               `json:"extra"`
}

// TestDecodeConfigAgreesWithSchema: the SDK's DecodeConfig and the
// gateway's check of the same config against the plugin's reported
// SchemaFor judge every value alike — the gateway must never refuse what
// the plugin would take, nor pass what the plugin then refuses.
func TestDecodeConfigAgreesWithSchema(t *testing.T) {
	schema := sdk.SchemaFor[agreeConfig]()
	tests := []struct {
		raw string
		ok  bool
	}{
		{`{"url": "u"}`, true},
		{`{"url": "u", "timeout_sec": 0}`, false}, // the case of issue #25: explicit zero under min=1
		{`{"url": "u", "timeout_sec": 1}`, true},
		{`{"url": "u", "timeout_sec": 61}`, false},
		{`{"url": "u", "timeout_sec": -1}`, false},
		{`{"url": "u", "timeout_sec": null}`, false},
		{`{"url": "u", "ratio": 0}`, false},
		{`{"url": "u", "ratio": 0.5}`, true},
		{`{"url": ""}`, false},
		{`{}`, false},
		{`{"url": null}`, false},
		{`{"url": "u", "mode": ""}`, false},
		{`{"url": "u", "mode": "b"}`, true},
		{`{"url": "u", "mode": "c"}`, false},
		{`{"url": "u", "name": ""}`, false},
		{`{"url": "u", "name": "é"}`, false},
		{`{"url": "u", "name": "éé"}`, true},
		{`{"url": "u", "name": "ééé"}`, true},
		{`{"url": "u", "name": "éééé"}`, false},
		{`{"url": "u", "tags": []}`, true},
		{`{"url": "u", "tags": ["a", "b", "c"]}`, false},
		{`{"url": "u", "labels": {"a": "1", "b": "2"}}`, false},
		{`{"url": "u", "smtp": null}`, false},
		{`{"url": "u", "smtp": {}}`, false},
		{`{"url": "u", "smtp": {"host": "mx"}}`, true},
		{`{"url": "u", "smtp": {"host": "mx", "port": 0}}`, false},
		{`{"url": "u", "relays": [{"host": "a"}, {"host": "b", "port": 0}]}`, false},
		{`{"url": "u", "relays": [{"host": "a"}, {"host": "b", "port": 25}]}`, true},
		{`{"url": "u", "extra": null}`, true},
		{`{"url": "u", "unknown": 1}`, false},
		// JSON Schema's integers include 1.0 and 1e1; a fraction is none.
		{`{"url": "u", "timeout_sec": 10.0}`, true},
		{`{"url": "u", "timeout_sec": 1e1}`, true},
		{`{"url": "u", "timeout_sec": 1.5}`, false},
		{`{"url": "u", "timeout_sec": 0.0}`, false},
		{`{"url": "u", "relays": [{"host": "b", "port": 25.0}]}`, true},
		{`{"url": "u", "smtp": {"host": "mx", "port": 2.5e1}}`, true},
	}
	for _, tt := range tests {
		_, decodeErr := sdk.DecodeConfig[agreeConfig]([]byte(tt.raw))
		schemaErr := validateSchema("p", schema, []byte(tt.raw))
		if (decodeErr == nil) != tt.ok || (schemaErr == nil) != tt.ok {
			t.Errorf("%s: DecodeConfig: %v; schema: %v; want ok=%v from both", tt.raw, decodeErr, schemaErr, tt.ok)
		}
	}
}
