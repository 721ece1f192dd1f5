// Command gcbench is the Go side of gort's collector benchmarks: the same
// programs as bench/gc/gc_bench.c (binary-trees, GCBench, gc_latency),
// written the way a Go programmer would, printing the same "key value"
// lines.  bench/gc/run.py builds and runs it next to the gort and Boehm
// builds of the C program.
//
//	gcbench binarytrees N | gcbench gcbench | gcbench latency WINDOW COUNT
//
// The collector's figures come from runtime.ReadMemStats: NumGC,
// PauseTotalNs and the last 256 PauseNs (each is one cycle's
// stop-the-world time).
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"
)

func die(msg string) {
	fmt.Fprintln(os.Stderr, "gcbench:", msg)
	os.Exit(1)
}

func argInt(i int) int64 {
	if len(os.Args) <= i {
		die("missing argument")
	}
	v, err := strconv.ParseInt(os.Args[i], 10, 64)
	if err != nil {
		die(err.Error())
	}
	return v
}

// rankOf: the nearest rank (1-based) of percentile p among n sorted values.
func rankOf(n int, p float64) int {
	rank := int(p/100*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return rank
}

// percentile p of v, which it sorts; 0 when empty.
func percentile(v []int64, p float64) int64 {
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[rankOf(len(v), p)-1]
}

func printPauses(prefix string, v []int64) {
	var max int64
	for _, x := range v {
		if x > max {
			max = x
		}
	}
	fmt.Printf("%s_max_ns %d\n", prefix, max)
	fmt.Printf("%s_p50_ns %d\n", prefix, percentile(v, 50))
	fmt.Printf("%s_p99_ns %d\n", prefix, percentile(v, 99))
}

func printGCStats() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := int(ms.NumGC)
	if n > 256 {
		n = 256
	}
	p := make([]int64, n)
	for i := 0; i < n; i++ {
		p[i] = int64(ms.PauseNs[(int(ms.NumGC)+255-i)%256])
	}
	fmt.Printf("num_gc %d\n", ms.NumGC)
	fmt.Printf("pauses_seen %d\n", n)
	fmt.Printf("pause_total_ns %d\n", ms.PauseTotalNs)
	printPauses("pause", p)
	fmt.Printf("next_gc_bytes %d\n", ms.NextGC)
	fmt.Printf("gc_cpu_fraction %.4f\n", ms.GCCPUFraction)
	fmt.Printf("gomaxprocs %d\n", runtime.GOMAXPROCS(0))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }

// ---- binary-trees ----

type Node struct{ left, right *Node }

func bottomUp(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	return &Node{bottomUp(depth - 1), bottomUp(depth - 1)}
}

func (n *Node) check() int64 {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

func binaryTrees(maxDepth int) {
	const minDepth = 4
	if maxDepth < minDepth+2 {
		maxDepth = minDepth + 2
	}
	t0 := time.Now()
	stretch := bottomUp(maxDepth + 1)
	fmt.Printf("check_stretch %d\n", stretch.check())
	stretch = nil

	longLived := bottomUp(maxDepth)
	for d := minDepth; d <= maxDepth; d += 2 {
		iters := int64(1) << (maxDepth - d + minDepth)
		var sum int64
		for i := int64(0); i < iters; i++ {
			sum += bottomUp(d).check()
		}
		fmt.Printf("check_depth%d %d\n", d, sum)
	}
	fmt.Printf("check_longlived %d\n", longLived.check())
	fmt.Printf("ms %s\n", ms(time.Since(t0)))
	tree := int64(2)<<maxDepth - 1
	fmt.Printf("live_bytes %d\n", 2*tree*16)
}

// ---- GCBench ----

const (
	stretchDepth   = 18
	longLivedDepth = 16
	arraySize      = 500000
	gbMinDepth     = 4
	gbMaxDepth     = 16
)

type GNode struct {
	left, right *GNode
	i, j        int32
}

func treeSize(depth int) int64 { return int64(2)<<depth - 1 }

func populate(depth int, n *GNode) {
	if depth <= 0 {
		return
	}
	n.left, n.right = &GNode{}, &GNode{}
	populate(depth-1, n.left)
	populate(depth-1, n.right)
}

func makeTree(depth int) *GNode {
	if depth <= 0 {
		return &GNode{}
	}
	return &GNode{left: makeTree(depth - 1), right: makeTree(depth - 1)}
}

func (n *GNode) check() int64 {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

var sink *GNode

func gcBench() {
	t0 := time.Now()
	sink = makeTree(stretchDepth)
	sink = nil

	longLived := &GNode{}
	populate(longLivedDepth, longLived)

	array := make([]float64, arraySize)
	for i := 1; i < arraySize/2; i++ {
		array[i] = 1.0 / float64(i)
	}

	for d := gbMinDepth; d <= gbMaxDepth; d += 2 {
		iters := 2 * treeSize(stretchDepth) / treeSize(d)
		for i := int64(0); i < iters; i++ {
			sink = &GNode{}
			populate(d, sink)
		}
		for i := int64(0); i < iters; i++ {
			sink = makeTree(d)
		}
	}
	sink = nil

	fmt.Printf("check_longlived %d\n", longLived.check())
	ok := 0
	if array[1000] == 1.0/1000 {
		ok = 1
	}
	fmt.Printf("check_array %d\n", ok)
	runtime.KeepAlive(array)
	fmt.Printf("ms %s\n", ms(time.Since(t0)))
	a := treeSize(stretchDepth) * 24
	b := (treeSize(longLivedDepth)+treeSize(gbMaxDepth))*24 + arraySize*8
	if b > a {
		a = b
	}
	fmt.Printf("live_bytes %d\n", a)
}

// ---- gc_latency ----

const msgSize = 1024

type message *[msgSize]byte

// latency creates count 1 KiB messages into a ring of window slots and
// times every creation step.
func latency(window, count int64) {
	table := make([]message, window)
	steps := make([]uint32, count)
	var worst int64

	t0 := time.Now()
	for i := int64(0); i < count; i++ {
		s := time.Now()
		m := new([msgSize]byte)
		for k := range m {
			m[k] = byte(i)
		}
		table[i%window] = m
		dt := int64(time.Since(s))
		if dt > int64(^uint32(0)) {
			steps[i] = ^uint32(0)
		} else {
			steps[i] = uint32(dt)
		}
		if dt > worst {
			worst = dt
		}
	}
	el := time.Since(t0)

	var sum int64
	for k := int64(0); k < window; k++ {
		sum += int64(table[k][k%msgSize])
	}
	fmt.Printf("check_ring %d\n", sum)

	// Percentiles from the step times sorted in place: no new memory.
	sort.Slice(steps, func(i, j int) bool { return steps[i] < steps[j] })
	n := len(steps)
	fmt.Printf("ms %s\n", ms(el))
	fmt.Printf("step_max_ns %d\n", worst)
	fmt.Printf("step_p99_ns %d\n", steps[rankOf(n, 99)-1])
	fmt.Printf("step_p999_ns %d\n", steps[rankOf(n, 99.9)-1])
	fmt.Printf("step_p50_ns %d\n", steps[rankOf(n, 50)-1])
	runtime.KeepAlive(table)
	runtime.KeepAlive(steps)
	fmt.Printf("live_bytes %d\n", window*(msgSize+8)+count*4)
}

func main() {
	b := ""
	if len(os.Args) > 1 {
		b = os.Args[1]
	}
	switch b {
	case "binarytrees":
		binaryTrees(int(argInt(2)))
	case "gcbench":
		gcBench()
	case "latency":
		w, c := argInt(2), argInt(3)
		if w <= 0 || c < w {
			die("latency: COUNT >= WINDOW > 0")
		}
		latency(w, c)
	default:
		fmt.Fprintln(os.Stderr, "usage: gcbench binarytrees N | gcbench | latency WINDOW COUNT")
		os.Exit(2)
	}
	printGCStats()
	fmt.Println("impl go")
}
