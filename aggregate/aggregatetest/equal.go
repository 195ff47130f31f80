package aggregatetest

import (
	"fmt"
	"reflect"
	"strconv"
)

// differences compares two events the way an aggregate sees them and
// returns one line per place where they differ ("path: a != b"); none
// means equal. It is reflect.DeepEqual with two exceptions, both about
// what an encoding keeps: a value whose type has a method Equal(T) bool
// (time.Time: the monotonic clock reading and the location's name are not
// encoded) is compared with it, and a nil map or slice equals an empty one
// (omitempty leaves the empty one out, and it decodes as nil).
func differences(a, b any) []string {
	var d differ
	d.walk("", reflect.ValueOf(a), reflect.ValueOf(b))
	return d.lines
}

type differ struct {
	lines []string
	seen  map[[2]uintptr]bool // pointer pairs being compared, against cycles
}

const maxDifferences = 20

func (d *differ) add(path string, a, b reflect.Value) {
	if len(d.lines) == maxDifferences {
		d.lines = append(d.lines, "...")
	}
	if len(d.lines) > maxDifferences {
		return
	}
	if path == "" {
		path = "(value)"
	}
	sa, sb := show(a), show(b)
	if sa == sb { // the same text: say what differs
		sa, sb = sa+" ("+kind(a)+")", sb+" ("+kind(b)+")"
	}
	d.lines = append(d.lines, fmt.Sprintf("%s: %s != %s", path, sa, sb))
}

// kind describes v's type, and its address when it is a pointer.
func kind(v reflect.Value) string {
	if !v.IsValid() {
		return "nil"
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		if v.IsNil() {
			return v.Type().String() + " nil"
		}
		return fmt.Sprintf("%s %#x", v.Type(), v.Pointer())
	}
	return v.Type().String()
}

func show(v reflect.Value) string {
	if !v.IsValid() {
		return "<nil>"
	}
	return fmt.Sprintf("%+v", v) // fmt prints the value a reflect.Value holds
}

var boolType = reflect.TypeFor[bool]()

// equalMethod returns the method Equal(T) bool of v's type T, if it has
// one and v may be used as an interface.
func equalMethod(v reflect.Value) (reflect.Value, bool) {
	if !v.CanInterface() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return reflect.Value{}, false
	}
	m := v.MethodByName("Equal")
	if !m.IsValid() {
		return reflect.Value{}, false
	}
	mt := m.Type()
	if mt.NumIn() != 1 || mt.In(0) != v.Type() || mt.NumOut() != 1 || mt.Out(0) != boolType {
		return reflect.Value{}, false
	}
	return m, true
}

func (d *differ) walk(path string, a, b reflect.Value) {
	if !a.IsValid() || !b.IsValid() {
		if a.IsValid() != b.IsValid() {
			d.add(path, a, b)
		}
		return
	}
	if a.Type() != b.Type() {
		d.add(path, a, b)
		return
	}
	if m, ok := equalMethod(a); ok && b.CanInterface() && !(b.Kind() == reflect.Pointer && b.IsNil()) {
		if !m.Call([]reflect.Value{b})[0].Bool() {
			d.add(path, a, b)
		}
		return
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			d.walk(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
		}
	case reflect.Array:
		for i := range a.Len() {
			d.walk(path+"["+strconv.Itoa(i)+"]", a.Index(i), b.Index(i))
		}
	case reflect.Slice:
		if a.Len() != b.Len() {
			d.add(path, a, b)
			return
		}
		for i := range a.Len() {
			d.walk(path+"["+strconv.Itoa(i)+"]", a.Index(i), b.Index(i))
		}
	case reflect.Map:
		if a.Len() != b.Len() {
			d.add(path, a, b)
			return
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() {
				d.add(path+"["+show(k)+"]", a.MapIndex(k), bv)
				continue
			}
			d.walk(path+"["+show(k)+"]", a.MapIndex(k), bv)
		}
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				d.add(path, a, b)
			}
			return
		}
		key := [2]uintptr{a.Pointer(), b.Pointer()}
		if d.seen[key] {
			return
		}
		if d.seen == nil {
			d.seen = map[[2]uintptr]bool{}
		}
		d.seen[key] = true
		d.walk(path, a.Elem(), b.Elem())
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				d.add(path, a, b)
			}
			return
		}
		d.walk(path, a.Elem(), b.Elem())
	case reflect.Func:
		// As for reflect.DeepEqual: equal only when both are nil.
		if !a.IsNil() || !b.IsNil() {
			d.add(path, a, b)
		}
	case reflect.Chan, reflect.UnsafePointer:
		if a.Pointer() != b.Pointer() {
			d.add(path, a, b)
		}
	case reflect.Bool:
		if a.Bool() != b.Bool() {
			d.add(path, a, b)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if a.Int() != b.Int() {
			d.add(path, a, b)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if a.Uint() != b.Uint() {
			d.add(path, a, b)
		}
	case reflect.Float32, reflect.Float64:
		if a.Float() != b.Float() {
			d.add(path, a, b)
		}
	case reflect.Complex64, reflect.Complex128:
		if a.Complex() != b.Complex() {
			d.add(path, a, b)
		}
	case reflect.String:
		if a.String() != b.String() {
			d.add(path, a, b)
		}
	default:
		d.add(path, a, b)
	}
}
