package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Configurer validates and applies a plugin's configuration. The gateway
// holds each plugin's configuration as a JSON object (from the `config:` key
// of the plugin's entry in its config file) and sends it as raw JSON.
// TypedConfig builds a Configurer from a Go struct.
type Configurer interface {
	// ValidateConfig checks raw without applying it. Errors should wrap
	// ErrInvalidConfig and name the offending field.
	ValidateConfig(ctx context.Context, raw []byte) error
	// Configure applies raw. It is called once after the plugin starts and
	// again when the operator changes the configuration; host gives access
	// to the gateway's services.
	Configure(ctx context.Context, raw []byte, host Host) error
}

// TypedConfig returns a Configurer that decodes the configuration into T
// with DecodeConfig (strict, with the checks of T's `berth` tags and T's
// Validate method) and hands it to apply. Its JSON Schema is SchemaFor[T].
func TypedConfig[T any](apply func(ctx context.Context, cfg T, host Host) error) Configurer {
	return typedConfig[T]{apply: apply}
}

type typedConfig[T any] struct {
	apply func(context.Context, T, Host) error
}

func (c typedConfig[T]) ValidateConfig(_ context.Context, raw []byte) error {
	_, err := DecodeConfig[T](raw)
	return err
}

func (c typedConfig[T]) Configure(ctx context.Context, raw []byte, host Host) error {
	cfg, err := DecodeConfig[T](raw)
	if err != nil {
		return err
	}
	return c.apply(ctx, cfg, host)
}

// ConfigSchema returns SchemaFor[T]; Serve uses it when Options.ConfigSchema
// is empty.
func (c typedConfig[T]) ConfigSchema() []byte { return SchemaFor[T]() }

// Validator is implemented by configuration types that check more than
// their tags can say (one field required when another is set, ...).
// DecodeConfig calls Validate after decoding.
type Validator interface {
	Validate() error
}

// DecodeConfig decodes a JSON configuration object into a T, strictly:
//
//   - an unknown field is an error naming it, as is a value of the wrong type;
//   - fields tagged `berth:"default=…"` that are absent take the default;
//   - `berth:"required"` fields must be present (a string, list or map
//     also non-empty), `min=`/`max=` bound numbers (and the length of
//     strings, lists and maps), `enum=a|b` limits a string;
//   - the rules judge every value present in raw, zero and "" included,
//     exactly as the gateway's check against SchemaFor[T] does: an
//     explicit 0 for a `min=1` field is refused by both; an absent field
//     is not judged (it takes its default, or its zero value);
//   - JSON null is refused where the field's schema has a type;
//   - if T (or *T) implements Validator, Validate is called last.
//
// Every error wraps ErrInvalidConfig. Empty input or JSON null decode as {}.
// T must be a struct type; SchemaFor[T] describes the same rules as a JSON
// Schema.
func DecodeConfig[T any](raw []byte) (T, error) {
	var cfg T
	t := reflect.TypeOf(cfg)
	if t == nil || t.Kind() != reflect.Struct {
		return cfg, fmt.Errorf("%w: config type %v is not a struct", ErrInvalidConfig, t)
	}
	info, err := structInfoFor(t)
	if err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	v := reflect.ValueOf(&cfg).Elem()
	if err := info.applyDefaults(v); err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}

	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		trimmed = []byte("{}")
	}
	if trimmed[0] != '{' {
		return cfg, fmt.Errorf("%w: config must be a JSON object", ErrInvalidConfig)
	}
	// JSON Schema calls 1.0 and 1e3 integers, as the gateway's check of
	// the same config does; encoding/json refuses them for an int field.
	// Integral numbers bound for integer fields are rewritten as integer
	// literals first, so both judge the value alike.
	if norm, err := integralInts(t, trimmed); err == nil {
		trimmed = norm
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%w: %s", ErrInvalidConfig, describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return cfg, fmt.Errorf("%w: unexpected data after the config object", ErrInvalidConfig)
	}
	var present map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &present); err != nil {
		return cfg, fmt.Errorf("%w: %s", ErrInvalidConfig, describeJSONError(err))
	}
	if err := info.check(v, "", present); err != nil {
		return cfg, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	var validator Validator
	if vv, ok := any(cfg).(Validator); ok {
		validator = vv
	} else if vv, ok := any(&cfg).(Validator); ok {
		validator = vv
	}
	if validator != nil {
		if err := validator.Validate(); err != nil {
			if errors.Is(err, ErrInvalidConfig) {
				return cfg, err
			}
			return cfg, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	return cfg, nil
}

// describeJSONError rewrites encoding/json's errors in the terms of the
// config file: which field, what was wrong.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("field %q: expected %s, got JSON %s", field, jsonKind(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("not valid JSON at byte %d: %v", syntaxErr.Offset, err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for this one.
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON: unexpected end of input"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

// integralInts returns raw with every number that lands in an integer
// field of t and has an integral value written as an integer literal
// ("1.0" → "1", "1e3" → "1000"). Anything it cannot read is left for the
// strict decoder to refuse.
func integralInts(t reflect.Type, raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	changed := false
	v = integralIn(t, v, &changed)
	if !changed {
		return raw, nil
	}
	return json.Marshal(v)
}

func integralIn(t reflect.Type, v any, changed *bool) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok || !strings.ContainsAny(string(n), ".eE") {
			return v
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return v
		}
		*changed = true
		return json.Number(strconv.FormatInt(int64(f), 10))
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" && f.Anonymous {
				// An embedded struct's fields are the object's own.
				integralIn(f.Type, m, changed)
				continue
			}
			if name == "" {
				name = f.Name
			}
			if fv, ok := m[name]; ok {
				m[name] = integralIn(f.Type, fv, changed)
			}
		}
		return m
	case reflect.Slice, reflect.Array:
		l, ok := v.([]any)
		if !ok {
			return v
		}
		for i := range l {
			l[i] = integralIn(t.Elem(), l[i], changed)
		}
		return l
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for k := range m {
			m[k] = integralIn(t.Elem(), m[k], changed)
		}
		return m
	}
	return v
}
