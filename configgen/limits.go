package configgen

import (
	"fmt"
	"text/template"
)

// maxListItems bounds the lists until, untilStep and seq may build, so a
// template (or a pod's configuration.params feeding one) cannot make the
// node service allocate without bound.
const maxListItems = 10000

// boundedFuncs replaces the sprig functions whose cost grows with an
// argument by versions that refuse sizes past maxListItems items or
// MaxTemplateOutput bytes, then call sprig's own implementation.
func boundedFuncs(fm template.FuncMap) {
	until, _ := fm["until"].(func(int) []int)
	untilStep, _ := fm["untilStep"].(func(int, int, int) []int)
	seq, _ := fm["seq"].(func(...int) string)
	indent, _ := fm["indent"].(func(int, string) string)
	nindent, _ := fm["nindent"].(func(int, string) string)

	fm["until"] = func(count int) ([]int, error) {
		if err := checkItems("until", int64(count)); err != nil {
			return nil, err
		}
		return until(count), nil
	}
	fm["untilStep"] = func(start, stop, step int) ([]int, error) {
		if err := checkItems("untilStep", stepCount(int64(start), int64(stop), int64(step))); err != nil {
			return nil, err
		}
		return untilStep(start, stop, step), nil
	}
	fm["seq"] = func(params ...int) (string, error) {
		if err := checkItems("seq", seqCount(params)); err != nil {
			return "", err
		}
		return seq(params...), nil
	}
	fm["repeat"] = func(count int, s string) (string, error) {
		if count < 0 {
			count = 0
		}
		if int64(count)*int64(len(s)) > MaxTemplateOutput {
			return "", fmt.Errorf("repeat: result over %d bytes", MaxTemplateOutput)
		}
		return repeatString(s, count), nil
	}
	fm["indent"] = func(spaces int, v string) (string, error) {
		if err := checkIndent(spaces, v); err != nil {
			return "", err
		}
		return indent(spaces, v), nil
	}
	fm["nindent"] = func(spaces int, v string) (string, error) {
		if err := checkIndent(spaces, v); err != nil {
			return "", err
		}
		return nindent(spaces, v), nil
	}
}

func checkItems(fn string, n int64) error {
	if n > maxListItems {
		return fmt.Errorf("%s: more than %d items", fn, maxListItems)
	}
	return nil
}

// stepCount is how many items untilStep(start, stop, step) yields, or more.
func stepCount(start, stop, step int64) int64 {
	switch {
	case step > 0 && stop > start:
		return (stop - start + step - 1) / step
	case step < 0 && stop < start:
		return (start - stop - step - 1) / -step
	default:
		return 0
	}
}

// seqCount is how many numbers seq prints for its parameters, or more.
func seqCount(p []int) int64 {
	abs := func(v int64) int64 {
		if v < 0 {
			return -v
		}
		return v
	}
	switch len(p) {
	case 1:
		return abs(int64(p[0])) + 1
	case 2:
		return abs(int64(p[1])-int64(p[0])) + 1
	case 3:
		if p[1] == 0 {
			return 0
		}
		return abs(int64(p[2])-int64(p[0]))/abs(int64(p[1])) + 1
	default:
		return 0
	}
}

func checkIndent(spaces int, v string) error {
	lines := int64(1)
	for i := 0; i < len(v); i++ {
		if v[i] == '\n' {
			lines++
		}
	}
	if spaces < 0 || int64(spaces)*lines+int64(len(v)) > MaxTemplateOutput {
		return fmt.Errorf("indent: result over %d bytes", MaxTemplateOutput)
	}
	return nil
}

func repeatString(s string, count int) string {
	b := make([]byte, 0, len(s)*count)
	for range count {
		b = append(b, s...)
	}
	return string(b)
}
