package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

type smtpConfig struct {
	Host string `json:"host" berth:"required"`
	Port int    `json:"port" berth:"min=1,max=65535,default=587"`
}

type testConfig struct {
	Path    string            `json:"path" berth:"required,description=Where, exactly, to write"`
	Mode    string            `json:"mode" berth:"enum=append|rotate,default=append"`
	Limit   int               `json:"limit" berth:"min=1,max=1000"`
	Tags    []string          `json:"tags" berth:"max=3"`
	Debug   bool              `json:"debug"`
	SMTP    smtpConfig        `json:"smtp"`
	Labels  map[string]string `json:"labels"`
	Ignored string            `json:"-"`
}

func (c testConfig) Validate() error {
	if c.Mode == "rotate" && c.Limit == 0 {
		return errors.New(`field "limit" is required when mode is rotate`)
	}
	return nil
}

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantErr string // substring; empty means success
	}{
		{"minimal", `{"path": "/x", "smtp": {"host": "mx"}}`, ""},
		{"absent nested object is not judged", `{"path": "/x"}`, ""},
		{"all", `{"path": "/x", "mode": "rotate", "limit": 10, "tags": ["a"], "debug": true, "smtp": {"host": "mx", "port": 25}, "labels": {"a": "b"}}`, ""},
		{"unknown field", `{"path": "/x", "pth": "/y", "smtp": {"host": "mx"}}`, `unknown field "pth"`},
		{"unknown nested field", `{"path": "/x", "smtp": {"host": "mx", "prot": 1}}`, `unknown field "prot"`},
		{"missing required", `{"smtp": {"host": "mx"}}`, `field "path" is required`},
		{"missing nested required", `{"path": "/x", "smtp": {}}`, `field "smtp.host" is required`},
		{"explicit zero below min", `{"path": "/x", "limit": 0, "smtp": {"host": "mx"}}`, `field "limit": 0 is below the minimum 1`},
		{"explicit zero nested", `{"path": "/x", "smtp": {"host": "mx", "port": 0}}`, `field "smtp.port": 0 is below the minimum 1`},
		{"required but empty", `{"path": "", "smtp": {"host": "mx"}}`, `field "path" is required and must not be empty`},
		{"empty string not in enum", `{"path": "/x", "mode": "", "smtp": {"host": "mx"}}`, `field "mode": "" is not one of append, rotate`},
		{"null for a typed field", `{"path": "/x", "limit": null, "smtp": {"host": "mx"}}`, `field "limit": expected an integer, got JSON null`},
		{"length counts characters", `{"path": "/x", "tags": ["a","b","c","d"], "smtp": {"host": "mx"}}`, `length 4`},
		{"wrong type", `{"path": 3}`, `field "path": expected a string, got JSON number`},
		{"below min", `{"path": "/x", "limit": -1, "smtp": {"host": "mx"}}`, `field "limit": -1 is below the minimum 1`},
		{"above max", `{"path": "/x", "smtp": {"host": "mx", "port": 70000}}`, `field "smtp.port": 70000 is above the maximum 65535`},
		{"too many items", `{"path": "/x", "tags": ["a","b","c","d"], "smtp": {"host": "mx"}}`, `field "tags": length 4 is above the maximum 3`},
		{"not in enum", `{"path": "/x", "mode": "truncate", "smtp": {"host": "mx"}}`, `field "mode": "truncate" is not one of append, rotate`},
		{"validate method", `{"path": "/x", "mode": "rotate", "smtp": {"host": "mx"}}`, `field "limit" is required when mode is rotate`},
		{"not an object", `[1]`, `must be a JSON object`},
		{"syntax", `{"path": `, `not valid JSON`},
		{"trailing data", `{"path": "/x", "smtp": {"host": "mx"}} {}`, `unexpected data after`},
		{"ignored field is unknown", `{"path": "/x", "smtp": {"host": "mx"}, "Ignored": "x"}`, `unknown field "Ignored"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeConfig[testConfig]([]byte(tt.raw))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not match ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeConfigDefaults(t *testing.T) {
	cfg, err := DecodeConfig[testConfig]([]byte(`{"path": "/x", "smtp": {"host": "mx"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != "append" || cfg.SMTP.Port != 587 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	cfg, err = DecodeConfig[testConfig]([]byte(`{"path": "/x", "mode": "rotate", "limit": 5, "smtp": {"host": "mx", "port": 25}}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != "rotate" || cfg.SMTP.Port != 25 {
		t.Errorf("given values lost to defaults: %+v", cfg)
	}
}

func TestDecodeConfigEmpty(t *testing.T) {
	type opt struct {
		Level string `json:"level" berth:"default=info"`
	}
	for _, raw := range []string{``, `null`, ` {} `} {
		cfg, err := DecodeConfig[opt]([]byte(raw))
		if err != nil || cfg.Level != "info" {
			t.Errorf("DecodeConfig(%q) = %+v, %v", raw, cfg, err)
		}
	}
}

func TestSchemaFor(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(SchemaFor[testConfig](), &schema); err != nil {
		t.Fatal(err)
	}
	props := schema["properties"].(map[string]any)
	checks := []struct {
		path string
		want any
	}{
		{"type", "object"},
		{"additionalProperties", false},
		{"required", []any{"path"}},
		{"properties.path.description", "Where, exactly, to write"},
		{"properties.mode.enum", []any{"append", "rotate"}},
		{"properties.mode.default", "append"},
		{"properties.limit.type", "integer"},
		{"properties.limit.minimum", 1.0},
		{"properties.limit.maximum", 1000.0},
		{"properties.tags.maxItems", 3.0},
		{"properties.tags.items.type", "string"},
		{"properties.debug.type", "boolean"},
		{"properties.smtp.required", []any{"host"}},
		{"properties.smtp.properties.port.default", 587.0},
		{"properties.labels.additionalProperties.type", "string"},
	}
	for _, c := range checks {
		var v any = schema
		for _, k := range strings.Split(c.path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		if !reflect.DeepEqual(v, c.want) {
			t.Errorf("%s = %#v, want %#v", c.path, v, c.want)
		}
	}
	if _, ok := props["Ignored"]; ok {
		t.Error(`json:"-" field in the schema`)
	}
}

func TestSchemaForPanicsOnBadTag(t *testing.T) {
	type bad struct {
		N int `berth:"min=lots"`
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "min needs a number") {
			t.Errorf("recover() = %v", r)
		}
	}()
	SchemaFor[bad]()
}

func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte(`{"path": "/x", "smtp": {"host": "mx"}}`))
	f.Add([]byte(`{"tags": [1, 2], "labels": {"a": null}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := DecodeConfig[testConfig](raw); err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("error %v is not ErrInvalidConfig", err)
		}
	})
}
