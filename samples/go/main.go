// classify — the held-back digits through a Kiln-compiled library, from Go.
//
// cgo and the model's C header, nothing generated for Go: the library is found through its
// pkg-config file (digits-static.pc: the archive, then oneDNN, OpenMP and libstdc++), the input
// and output sizes through its introspection. A Model wraps a handle; its errors carry the
// status code and the handle's last-error text.
//
//	kiln compile samples/models/digits.onnx -o out --name digits --input-shape image=1x1x8x8 --library static
//	PKG_CONFIG_PATH=$PWD/out go run . ../models/digits_test_images.npy ../models/digits_test_labels.npy
package main

/*
#cgo pkg-config: digits-static
#include <stdlib.h>
#include "digits.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// KilnError is a failed call: Status is the C status code (DIGITS_ERROR_*).
type KilnError struct {
	Status  int
	Message string
}

func (e *KilnError) Error() string { return e.Message }

// Model is one handle of the model; Close frees it. One inference at a time per handle.
type Model struct{ m *C.digits_model }

func NewModel() (*Model, error) {
	var m *C.digits_model
	if s := C.digits_create(&m); s != C.DIGITS_OK {
		return nil, &KilnError{int(s), "digits_create: " + C.GoString(C.digits_status_string(s))}
	}
	return &Model{m}, nil
}

func (m *Model) Close() { C.digits_destroy(m.m); m.m = nil }

func (m *Model) check(call string, s C.digits_status) error {
	if s == C.DIGITS_OK {
		return nil
	}
	return &KilnError{int(s), fmt.Sprintf("digits_%s: %s: %s", call, C.GoString(C.digits_status_string(s)), C.GoString(C.digits_last_error(m.m)))}
}

func (m *Model) SetThreads(n int) error { return m.check("set_num_threads", C.digits_set_num_threads(m.m, C.int(n))) }

// Run runs one inference on one f32 input into one f32 output. The buffers are passed in
// C memory: cgo does not let C keep Go pointers inside a Go-allocated array.
func (m *Model) Run(input []float32, output []float32) error {
	inBytes, outBytes := len(input)*4, len(output)*4
	cin := C.malloc(C.size_t(inBytes + 1))
	cout := C.malloc(C.size_t(outBytes + 1))
	ptrs := (*[2]unsafe.Pointer)(C.malloc(C.size_t(2 * unsafe.Sizeof(uintptr(0)))))
	sizes := (*[2]C.size_t)(C.malloc(C.size_t(2 * unsafe.Sizeof(C.size_t(0)))))
	defer C.free(cin)
	defer C.free(cout)
	defer C.free(unsafe.Pointer(ptrs))
	defer C.free(unsafe.Pointer(sizes))
	if inBytes > 0 {
		copy(unsafe.Slice((*float32)(cin), len(input)), input)
	}
	ptrs[0], ptrs[1] = cin, cout
	sizes[0], sizes[1] = C.size_t(inBytes), C.size_t(outBytes)
	s := C.digits_run(m.m, 1, (*unsafe.Pointer)(unsafe.Pointer(&ptrs[0])), &sizes[0], 1, (*unsafe.Pointer)(unsafe.Pointer(&ptrs[1])), &sizes[1])
	if err := m.check("run", s); err != nil {
		return err
	}
	copy(output, unsafe.Slice((*float32)(cout), len(output)))
	return nil
}

// readNpy reads a .npy array (format 1.0-3.0, little-endian, C order) of dtype descr.
func readNpy(path, descr string) ([]int, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, nil, fmt.Errorf("%s: not a .npy file", path)
	}
	n, start := int(binary.LittleEndian.Uint16(b[8:10])), 10
	if b[6] != 1 {
		n, start = int(binary.LittleEndian.Uint32(b[8:12])), 12
	}
	if start+n > len(b) {
		return nil, nil, fmt.Errorf("%s: truncated header", path)
	}
	header := string(b[start : start+n])
	if !strings.Contains(header, "'descr': '"+descr+"'") || !strings.Contains(header, "'fortran_order': False") {
		return nil, nil, fmt.Errorf("%s: expected a C-order %s array: %s", path, descr, strings.TrimSpace(header))
	}
	m := regexp.MustCompile(`'shape': \(([^)]*)\)`).FindStringSubmatch(header)
	if m == nil {
		return nil, nil, fmt.Errorf("%s: no shape", path)
	}
	var shape []int
	for _, f := range strings.Split(m[1], ",") {
		if f = strings.TrimSpace(f); f != "" {
			d, err := strconv.Atoi(f)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: bad shape", path)
			}
			shape = append(shape, d)
		}
	}
	return shape, b[start+n:], nil
}

func classify(imagesPath, labelsPath string) error {
	if C.digits_num_inputs() != 1 || C.digits_num_outputs() != 1 || C.digits_input_type(0) != C.DIGITS_F32 || C.digits_output_type(0) != C.DIGITS_F32 {
		return fmt.Errorf("the model should take one f32 tensor and return one f32 tensor")
	}
	pixels, classes := int(C.digits_input_bytes(0))/4, int(C.digits_output_bytes(0))/4
	shape, raw, err := readNpy(imagesPath, "<f4")
	if err != nil {
		return err
	}
	if len(shape) == 0 || len(raw) != shape[0]*pixels*4 {
		return fmt.Errorf("%s: not N images of %d pixels", imagesPath, pixels)
	}
	n := shape[0]
	images := make([]float32, n*pixels)
	for i := range images {
		images[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	lshape, lraw, err := readNpy(labelsPath, "<i8")
	if err != nil {
		return err
	}
	if len(lshape) != 1 || lshape[0] != n || len(lraw) != 8*n {
		return fmt.Errorf("%s: expected %d labels", labelsPath, n)
	}

	model, err := NewModel()
	if err != nil {
		return err
	}
	defer model.Close()
	if err := model.SetThreads(1); err != nil {
		return err
	}
	logits := make([]float32, classes)
	micros := make([]float64, 0, n)
	correct := 0
	for i := 0; i < n; i++ {
		t := time.Now()
		if err := model.Run(images[i*pixels:(i+1)*pixels], logits); err != nil {
			return err
		}
		micros = append(micros, float64(time.Since(t).Nanoseconds())/1e3)
		best := 0
		for k, v := range logits {
			if v > logits[best] {
				best = k
			}
		}
		if int64(best) == int64(binary.LittleEndian.Uint64(lraw[8*i:])) {
			correct++
		}
	}
	sort.Float64s(micros)
	fmt.Printf("accuracy: %d/%d = %.2f%%\n", correct, n, 100*float64(correct)/float64(n))
	fmt.Printf("median latency: %.1f us/image (%d runs, Kiln %s, from Go)\n", micros[n/2], n, C.GoString(C.digits_version()))

	// A wrong-size buffer comes back as a KilnError carrying the status code.
	err = model.Run(images[:pixels-1], logits)
	if e, ok := err.(*KilnError); ok && e.Status == int(C.DIGITS_ERROR_SIZE_MISMATCH) {
		fmt.Println("wrong size refused:", e.Message)
		return nil
	}
	return fmt.Errorf("a buffer of the wrong size gave %v", err)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintf(os.Stderr, "usage: %s IMAGES.npy LABELS.npy\n", os.Args[0])
		os.Exit(2)
	}
	if err := classify(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
