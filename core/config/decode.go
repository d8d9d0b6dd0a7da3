package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Pos is a place in the configuration file.
type Pos struct{ Line, Col int }

// Meta records where a mapping and each of its keys stand in the file. The
// decoder fills any struct field of this type (tagged `yaml:"-"`).
type Meta struct {
	Pos
	Keys map[string]Pos
}

// At returns the position of key, or of the mapping itself if key is absent.
func (m Meta) At(key string) Pos {
	if p, ok := m.Keys[key]; ok {
		return p
	}
	return m.Pos
}

// Has reports whether key was written in the file.
func (m Meta) Has(key string) bool { _, ok := m.Keys[key]; return ok }

// Error is one configuration error: where it is, which field, and what is
// wrong and allowed.
type Error struct {
	File  string
	Line  int
	Col   int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	}
	if e.Field == "" {
		return loc + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
}

// ErrInvalid wraps every configuration error list.
var ErrInvalid = errors.New("invalid configuration")

// ErrorList is all errors found in one file, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Is lets errors.Is(err, ErrInvalid) match.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// scalarDecoder is implemented by leaf types that parse one YAML scalar.
type scalarDecoder interface {
	decodeScalar(s string) error
}

// nodeDecoder is implemented by types whose YAML form varies (a name or a
// list, a one-key mapping).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

type decoder struct {
	file  string
	errs  ErrorList
	warns ErrorList
	// YAML aliases can make a small file expand exponentially ("billion
	// laughs"): nodes reached through an alias are counted against a budget.
	// Other nodes are bounded by the file's size.
	aliasDepth int
	aliasWork  int
	stopped    bool
}

const (
	maxAliasWork = 100000 // nodes visited through aliases
	maxErrors    = 50     // then stop: fix these first
)

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if d.stopped {
		return
	}
	if len(d.errs) >= maxErrors {
		d.stopped = true
		d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf("more than %d errors; fix these first", maxErrors)})
		return
	}
	e := &Error{File: d.file, Field: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

func (d *decoder) errorAt(p Pos, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: p.Line, Col: p.Col, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// warnAt notes what is allowed but weakens security (Config.Warnings).
func (d *decoder) warnAt(p Pos, path, format string, args ...any) {
	d.warns = append(d.warns, &Error{File: d.file, Line: p.Line, Col: p.Col, Field: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	metaType = reflect.TypeOf(Meta{})
)

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing (null)"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

func resolve(n *yaml.Node) (_ *yaml.Node, alias bool) {
	for n != nil && (n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode) {
		if n.Kind == yaml.AliasNode {
			n, alias = n.Alias, true
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil, alias
		}
	}
	return n, alias
}

// decode fills v from n, recording errors instead of stopping, so one run
// reports every problem in the file.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n, alias := resolve(n)
	if n == nil || d.stopped {
		return
	}
	if alias {
		d.aliasDepth++
		defer func() { d.aliasDepth-- }()
	}
	if d.aliasDepth > 0 {
		if d.aliasWork++; d.aliasWork > maxAliasWork {
			d.errorf(n, path, "YAML aliases expand to more than %d values; write the values out", maxAliasWork)
			d.stopped = true
			return
		}
	}
	if v.CanAddr() {
		switch dec := v.Addr().Interface().(type) {
		case nodeDecoder:
			dec.decodeNode(d, n, path)
			return
		case scalarDecoder:
			if n.Kind != yaml.ScalarNode {
				d.errorf(n, path, "want a single value, got %s", kindName(n))
				return
			}
			if err := dec.decodeScalar(n.Value); err != nil {
				d.errorf(n, path, "%v", err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.Tag == "!!null" {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping of names, got %s", kindName(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.errorf(k, path+"."+k.Value, "defined twice")
				continue
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], ev, path+"."+k.Value)
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			d.errorf(n, path, "want text, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errorf(n, path, "want true or false, got %s", kindName(n))
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, err := strconv.ParseInt(n.Value, 0, v.Type().Bits())
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n, path, "want a whole number, got %s", kindName(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16:
		u, err := strconv.ParseUint(n.Value, 0, v.Type().Bits())
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n, path, "want a whole number from 0 to %d, got %s", uint64(1)<<v.Type().Bits()-1, kindName(n))
			return
		}
		v.SetUint(u)
	default:
		panic(fmt.Sprintf("config: no decoder for %s", v.Type()))
	}
}

type fieldInfo struct {
	index int
	name  string
}

func yamlFields(t reflect.Type) (fields []fieldInfo, meta int) {
	meta = -1
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == metaType {
			meta = i
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		fields = append(fields, fieldInfo{index: i, name: strings.Split(tag, ",")[0]})
	}
	return fields, meta
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	fields, meta := yamlFields(v.Type())
	m := Meta{Pos: Pos{n.Line, n.Column}, Keys: map[string]Pos{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		fpath := k.Value
		if path != "" {
			fpath = path + "." + k.Value
		}
		if _, dup := m.Keys[k.Value]; dup {
			d.errorf(k, fpath, "set twice in one mapping")
			continue
		}
		var fi *fieldInfo
		for j := range fields {
			if fields[j].name == k.Value {
				fi = &fields[j]
				break
			}
		}
		if fi == nil {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			sort.Strings(names)
			d.errorf(k, fpath, "unknown field; allowed here: %s", strings.Join(names, ", "))
			continue
		}
		m.Keys[k.Value] = Pos{k.Line, k.Column}
		d.decode(val, v.Field(fi.index), fpath)
	}
	if meta >= 0 {
		v.Field(meta).Set(reflect.ValueOf(m))
	}
}
