package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// SchemaFor returns the JSON Schema (draft 2020-12) of configuration type T,
// built from its fields' `json` names and `berth` tags:
//
//	type Config struct {
//		Path  string `json:"path" berth:"required,description=File to append messages to"`
//		Mode  string `json:"mode" berth:"enum=append|rotate,default=append"`
//		Limit int    `json:"limit" berth:"min=1,max=1000"`
//	}
//
// The `berth` tag is a comma-separated list of: required (present; a
// string, list or map also non-empty); min=N; max=N (bounds of a number,
// or of the length of a string, list or map); enum=a|b|c; default=V;
// description=text (last, as it may contain commas). The rules judge
// every value the config gives, zero included, and no absent one, the
// same way in DecodeConfig and in this schema. Objects
// forbid fields they do not declare, as DecodeConfig does. SchemaFor panics
// on a malformed tag, as that is a bug in the plugin, caught by its first
// test.
func SchemaFor[T any]() []byte {
	t := reflect.TypeFor[T]()
	schema, err := schemaOf(t)
	if err != nil {
		panic(fmt.Sprintf("sdk.SchemaFor[%v]: %v", t, err))
	}
	schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	out, err := json.Marshal(schema)
	if err != nil {
		panic(fmt.Sprintf("sdk.SchemaFor[%v]: %v", t, err))
	}
	return out
}

// rules are what a `berth` tag says about a field.
type rules struct {
	required    bool
	min, max    *float64
	enum        []string
	def         *string
	description string
}

func parseRules(tag string) (rules, error) {
	var r rules
	for tag != "" {
		var part string
		if strings.HasPrefix(tag, "description=") {
			r.description = strings.TrimPrefix(tag, "description=")
			break
		}
		part, tag, _ = strings.Cut(tag, ",")
		key, val, hasVal := strings.Cut(part, "=")
		switch key {
		case "required":
			r.required = true
		case "min", "max":
			n, err := strconv.ParseFloat(val, 64)
			if !hasVal || err != nil {
				return r, fmt.Errorf("berth tag %q: %s needs a number", part, key)
			}
			if key == "min" {
				r.min = &n
			} else {
				r.max = &n
			}
		case "enum":
			if val == "" {
				return r, fmt.Errorf("berth tag %q: enum needs values", part)
			}
			r.enum = strings.Split(val, "|")
		case "default":
			r.def = &val
		case "":
		default:
			return r, fmt.Errorf("berth tag: unknown rule %q", key)
		}
	}
	return r, nil
}

type fieldInfo struct {
	index []int
	name  string // JSON name
	rules rules
	// sub describes a struct-typed field (or element type), nil otherwise.
	sub *structInfo
}

type structInfo struct {
	fields []fieldInfo
}

var structInfos sync.Map // reflect.Type → *structInfo

func structInfoFor(t reflect.Type) (*structInfo, error) {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo), nil
	}
	info := &structInfo{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		r, err := parseRules(f.Tag.Get("berth"))
		if err != nil {
			return nil, fmt.Errorf("field %s: %v", f.Name, err)
		}
		fi := fieldInfo{index: f.Index, name: name, rules: r}
		if st := structElem(f.Type); st != nil {
			sub, err := structInfoFor(st)
			if err != nil {
				return nil, err
			}
			fi.sub = sub
		}
		info.fields = append(info.fields, fi)
	}
	structInfos.Store(t, info)
	return info, nil
}

// structElem returns the struct type a field holds directly, through a
// pointer, or as list elements; nil for anything else.
func structElem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t.PkgPath() != "time" {
		return t
	}
	return nil
}

// applyDefaults sets default= values into v before decoding, so that fields
// present in the JSON override them.
func (s *structInfo) applyDefaults(v reflect.Value) error {
	for _, f := range s.fields {
		fv := v.FieldByIndex(f.index)
		if f.rules.def != nil {
			if err := setFromString(fv, *f.rules.def); err != nil {
				return fmt.Errorf("field %q: default: %v", f.name, err)
			}
		}
		if f.sub != nil && fv.Kind() == reflect.Struct {
			if err := f.sub.applyDefaults(fv); err != nil {
				return err
			}
		}
	}
	return nil
}

func setFromString(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(n)
	default:
		return fmt.Errorf("defaults are supported for strings, numbers and booleans, not %v", v.Type())
	}
	return nil
}

// check enforces the rules on a decoded value; path prefixes field names
// and present holds the fields the JSON gave (with their raw values). A
// rule judges a field only when it was given, as JSON Schema does, so the
// SDK and the gateway's schema check agree on every value.
func (s *structInfo) check(v reflect.Value, path string, present map[string]json.RawMessage) error {
	for _, f := range s.fields {
		fv := v.FieldByIndex(f.index)
		name := path + f.name
		r := f.rules
		raw, given := present[f.name]
		if given && isNull(raw) {
			if acceptsNull(fv.Type()) {
				continue
			}
			return fmt.Errorf("field %q: expected %s, got JSON null", name, jsonKind(derefType(fv.Type())))
		}
		if !given {
			if r.required {
				return fmt.Errorf("field %q is required", name)
			}
			continue
		}
		base := fv
		for base.Kind() == reflect.Pointer && !base.IsNil() {
			base = base.Elem()
		}
		if r.required && isEmptyCollection(base) {
			return fmt.Errorf("field %q is required and must not be empty", name)
		}
		if measure, ok := measureOf(base); ok {
			if r.min != nil && measure < *r.min {
				return fmt.Errorf("field %q: %s is below the minimum %v", name, describeMeasure(base), *r.min)
			}
			if r.max != nil && measure > *r.max {
				return fmt.Errorf("field %q: %s is above the maximum %v", name, describeMeasure(base), *r.max)
			}
		}
		if len(r.enum) > 0 && base.Kind() == reflect.String && !slices.Contains(r.enum, base.String()) {
			return fmt.Errorf("field %q: %q is not one of %s", name, base.String(), strings.Join(r.enum, ", "))
		}
		if f.sub != nil {
			if err := checkNested(f.sub, fv, name, raw); err != nil {
				return err
			}
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// acceptsNull reports whether the schema of t allows JSON null: only the
// untyped ones (an interface, json.RawMessage) do.
func acceptsNull(t reflect.Type) bool {
	t = derefType(t)
	return t.Kind() == reflect.Interface || (t.Kind() == reflect.Slice && t.Name() == "RawMessage")
}

// isEmptyCollection reports an empty string, list or map: what `required`
// refuses besides an absent field (the schema says minLength, minItems or
// minProperties 1).
func isEmptyCollection(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return false
}

func checkNested(sub *structInfo, v reflect.Value, name string, raw json.RawMessage) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return checkNested(sub, v.Elem(), name, raw)
	case reflect.Struct:
		var present map[string]json.RawMessage
		if err := json.Unmarshal(raw, &present); err != nil {
			return fmt.Errorf("field %q: expected an object", name)
		}
		return sub.check(v, name+".", present)
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("field %q: expected a list", name)
		}
		for i := 0; i < v.Len() && i < len(items); i++ {
			if err := checkNested(sub, v.Index(i), fmt.Sprintf("%s[%d]", name, i), items[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// measureOf returns what min and max bound: a number's value, or the length
// of a string, list or map.
func measureOf(v reflect.Value) (float64, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	case reflect.String:
		// JSON Schema's minLength and maxLength count characters.
		return float64(utf8.RuneCountInString(v.String())), true
	case reflect.Slice, reflect.Array, reflect.Map:
		return float64(v.Len()), true
	}
	return 0, false
}

func describeMeasure(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return fmt.Sprintf("length %d", utf8.RuneCountInString(v.String()))
	case reflect.Slice, reflect.Array, reflect.Map:
		return fmt.Sprintf("length %d", v.Len())
	}
	return fmt.Sprint(v.Interface())
}

// schemaOf builds the JSON Schema of a Go type as a map (json.Marshal sorts
// map keys, so the output is stable).
func schemaOf(t reflect.Type) (map[string]any, error) {
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			if t.Name() == "RawMessage" {
				return map[string]any{}, nil
			}
			return map[string]any{"type": "string", "contentEncoding": "base64"}, nil
		}
		items, err := schemaOf(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key type %v: only string keys fit JSON", t.Key())
		}
		vals, err := schemaOf(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": vals}, nil
	case reflect.Interface:
		return map[string]any{}, nil
	case reflect.Struct:
		if t.PkgPath() == "time" && t.Name() == "Time" {
			return map[string]any{"type": "string", "format": "date-time"}, nil
		}
		return structSchema(t)
	}
	return nil, fmt.Errorf("type %v cannot be configured from JSON", t)
}

func structSchema(t reflect.Type) (map[string]any, error) {
	info, err := structInfoFor(t)
	if err != nil {
		return nil, err
	}
	props := map[string]any{}
	var required []string
	for _, f := range info.fields {
		ft := t.FieldByIndex(f.index).Type
		s, err := schemaOf(ft)
		if err != nil {
			return nil, fmt.Errorf("field %s: %v", f.name, err)
		}
		r := f.rules
		if r.description != "" {
			s["description"] = r.description
		}
		if len(r.enum) > 0 {
			s["enum"] = r.enum
		}
		if r.def != nil {
			s["default"] = typedDefault(ft, *r.def)
		}
		base := ft
		for base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		for key, bound := range map[string]*float64{"min": r.min, "max": r.max} {
			if bound == nil {
				continue
			}
			var name string
			switch base.Kind() {
			case reflect.String:
				name = map[string]string{"min": "minLength", "max": "maxLength"}[key]
			case reflect.Slice, reflect.Array:
				name = map[string]string{"min": "minItems", "max": "maxItems"}[key]
			case reflect.Map:
				name = map[string]string{"min": "minProperties", "max": "maxProperties"}[key]
			default:
				name = map[string]string{"min": "minimum", "max": "maximum"}[key]
			}
			s[name] = *bound
		}
		if r.required {
			required = append(required, f.name)
			// required also means non-empty for a string, list or map,
			// as DecodeConfig judges it.
			key := map[reflect.Kind]string{reflect.String: "minLength", reflect.Slice: "minItems", reflect.Array: "minItems", reflect.Map: "minProperties"}[base.Kind()]
			if cur, ok := s[key].(float64); key != "" && (!ok || cur < 1) {
				s[key] = 1.0
			}
		}
		props[f.name] = s
	}
	schema := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		schema["required"] = required
	}
	return schema, nil
}

// typedDefault renders a default in the schema with its JSON type.
func typedDefault(t reflect.Type, s string) any {
	v := reflect.New(t).Elem()
	if err := setFromString(v, s); err != nil {
		return s
	}
	return v.Interface()
}
