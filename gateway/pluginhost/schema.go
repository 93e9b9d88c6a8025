package pluginhost

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/berthgw/berth/sdk"
)

// configError is a plugin configuration refused by the plugin's JSON
// Schema (checked by the host) or by the plugin's own ValidateConfig. It
// matches sdk.ErrInvalidConfig. Its text names fields and rules, never the
// configured values, which may be secrets.
type configError struct {
	Plugin string
	// Problems are "<field>: <rule>" lines.
	Problems []string
}

func (e *configError) Error() string {
	return fmt.Sprintf("plugin %q: invalid config: %s", e.Plugin, strings.Join(e.Problems, "; "))
}

// Is makes errors.Is(err, sdk.ErrInvalidConfig) hold.
func (e *configError) Is(target error) bool { return target == sdk.ErrInvalidConfig }

var printer = message.NewPrinter(language.English)

// refuseLoader keeps a plugin's schema from making the gateway read files
// or fetch URLs through "$ref".
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema references %q: external references are not followed", url)
}

// validateSchema checks config (a JSON object) against the JSON Schema
// the plugin reported. An empty schema accepts anything: the plugin's own
// ValidateConfig still runs.
func validateSchema(name string, schema, config []byte) error {
	if len(bytes.TrimSpace(schema)) == 0 {
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return fmt.Errorf("plugin %q reports a config schema that is not JSON: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(refuseLoader{})
	const url = "berth-plugin-config.json"
	if err := c.AddResource(url, doc); err != nil {
		return fmt.Errorf("plugin %q: config schema: %w", name, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return fmt.Errorf("plugin %q reports a config schema that does not compile: %w", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(config))
	if err != nil {
		return &configError{Plugin: name, Problems: []string{"config is not valid JSON"}}
	}
	err = sch.Validate(inst)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		var problems []string
		leaves(ve, &problems)
		slices.Sort(problems)
		return &configError{Plugin: name, Problems: slices.Compact(problems)}
	}
	if err != nil {
		return fmt.Errorf("plugin %q: validate config: %w", name, err)
	}
	return nil
}

// leaves collects the innermost validation errors, which say what is
// wrong where; the outer ones only say that a subschema failed.
func leaves(e *jsonschema.ValidationError, out *[]string) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			leaves(c, out)
		}
		return
	}
	loc := "/" + strings.Join(e.InstanceLocation, "/")
	if len(e.InstanceLocation) == 0 {
		loc = "(top level)"
	}
	*out = append(*out, fmt.Sprintf("field %s: %s", loc, describe(e.ErrorKind)))
}

// describe explains a failed rule without the offending value for the
// kinds whose library text quotes it (a pattern or format check on an API
// key would print the key).
func describe(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Pattern:
		return fmt.Sprintf("does not match the pattern %q", k.Want)
	case *kind.Format:
		return fmt.Sprintf("is not a valid %s", k.Want)
	case *kind.Const:
		return "is not the required value"
	default:
		return k.LocalizedString(printer)
	}
}
