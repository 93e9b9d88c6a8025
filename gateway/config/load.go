package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/berthgw/berth/configs"
)

// EnvPrefix starts the name of every environment variable that overrides a key.
const EnvPrefix = "BERTH_"

// Load builds the configuration: the embedded default, then the file at path
// (when path is not empty; keys it leaves out keep their default), then the
// BERTH_* variables found through lookupEnv, then validation. Every error is
// an *Error naming the key at fault.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	var c Config
	if err := decodeInto(&c, configs.Default, "embedded default"); err != nil {
		return nil, err
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &Error{"", fmt.Sprintf("read %s: %v", path, errors.Unwrap(err))}
		}
		if err := decodeInto(&c, data, path); err != nil {
			return nil, err
		}
	}
	if lookupEnv != nil {
		if err := applyEnv(&c, lookupEnv); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := c.Auth.OAuth.resolveClients(lookupEnv); err != nil {
		return nil, err
	}
	if err := c.Auth.SSO.resolveSSOSecrets(lookupEnv); err != nil {
		return nil, err
	}
	c.source, c.lookupEnv = path, lookupEnv
	return &c, nil
}

// Reload loads the configuration again from the file and environment the
// receiver was loaded from, for changes an operator asks to apply at run
// time (a plugin's reload).
func (c *Config) Reload() (*Config, error) {
	return Load(c.source, c.lookupEnv)
}

// decodeInto overlays YAML onto c, walking the node tree itself rather than
// using yaml.Unmarshal so that errors name the full key path (http.addr)
// instead of a Go type, and unknown keys are refused.
func decodeInto(c *Config, data []byte, source string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &Error{"", fmt.Sprintf("%s: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file: keep the defaults
	}
	return decodeNode(doc.Content[0], reflect.ValueOf(c).Elem(), "")
}

func decodeNode(node *yaml.Node, v reflect.Value, path string) error {
	if v.Kind() != reflect.Struct || v.Type() == reflect.TypeOf(Duration(0)) {
		if err := node.Decode(v.Addr().Interface()); err != nil {
			return &Error{path, leafProblem(err)}
		}
		return nil
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return nil
	}
	if node.Kind != yaml.MappingNode {
		key := path
		if key == "" {
			key = "(top level)"
		}
		return &Error{key, fmt.Sprintf("want a mapping, got a %s (line %d)", kindName(node.Kind), node.Line)}
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, val := node.Content[i], node.Content[i+1]
		child := joinKey(path, k.Value)
		field, ok := fieldByTag(v, k.Value)
		if !ok {
			return &Error{child, fmt.Sprintf("unknown key (line %d)", k.Line)}
		}
		if err := decodeNode(val, field, child); err != nil {
			return err
		}
	}
	return nil
}

// leafProblem turns yaml's type errors into one short sentence.
func leafProblem(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
			msg = msg[i+2:]
		}
		return msg
	}
	return err.Error()
}

func fieldByTag(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() && tagName(t.Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Keys lists every leaf key of the configuration in declaration order, as
// dotted paths. Tests use it to prove every key is documented and has a
// distinct environment variable.
func Keys() []string {
	var keys []string
	walkLeaves(reflect.ValueOf(&Config{}).Elem(), "", func(path string, _ reflect.Value) {
		keys = append(keys, path)
	})
	return keys
}

// EnvName returns the environment variable that overrides key:
// "http.addr" → "BERTH_HTTP_ADDR".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func walkLeaves(v reflect.Value, path string, fn func(string, reflect.Value)) {
	if v.Kind() != reflect.Struct || v.Type() == reflect.TypeOf(Duration(0)) {
		fn(path, v)
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		// Unexported fields hold values derived during Load (resolved
		// secrets); they are not keys.
		if t.Field(i).IsExported() {
			walkLeaves(v.Field(i), joinKey(path, tagName(t.Field(i))), fn)
		}
	}
}

// applyEnv sets every leaf whose BERTH_<PATH> variable is present. Values are
// parsed as YAML scalars so that env and file accept the same spellings;
// lists are comma-separated.
func applyEnv(c *Config, lookupEnv func(string) (string, bool)) error {
	var firstErr error
	walkLeaves(reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value) {
		if firstErr != nil {
			return
		}
		name := EnvName(path)
		raw, ok := lookupEnv(name)
		if !ok {
			return
		}
		node := scalarNode(raw)
		if v.Kind() == reflect.Slice {
			node = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for _, part := range strings.Split(raw, ",") {
				if part = strings.TrimSpace(part); part != "" {
					node.Content = append(node.Content, scalarNode(part))
				}
			}
		}
		if err := node.Decode(v.Addr().Interface()); err != nil {
			firstErr = &Error{path, fmt.Sprintf("from %s: %s", name, leafProblem(err))}
		}
	})
	return firstErr
}

// scalarNode makes a node whose tag yaml resolves itself, so "true" becomes a
// bool and "8080" an int, but a string field still receives the text as is.
func scalarNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: s}
}
