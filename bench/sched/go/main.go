// Command gobench is the Go side of gort's scheduler benchmarks: the same
// benchmarks as bench/sched/gort_bench.c, written the way a Go programmer
// would, printing the same "key value" lines.  bench/sched/run.py builds
// and runs both.
//
//	gobench BENCH [N]   (BENCH: yield pingpong chanbuf spawn burst skynet
//	                     sleep handoff parked; see gort_bench.c)
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var start = time.Now()

// nanotime: monotonic nanoseconds since the program started.
func nanotime() int64 { return int64(time.Since(start)) }

func argOr(i int, dflt int64) int64 {
	if len(os.Args) > i {
		v, err := strconv.ParseInt(os.Args[i], 10, 64)
		if err == nil {
			return v
		}
	}
	return dflt
}

func median(v []int64) int64 {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// rssNow: resident bytes from /proc/self/statm.
func rssNow() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res int64
	fmt.Sscan(string(b), &size, &res)
	return res * int64(os.Getpagesize())
}

func peakRSSKB() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss
}

func benchYield(n int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		for i := int64(0); i < n; i++ {
			runtime.Gosched()
		}
		wg.Done()
	}()
	t0 := nanotime()
	for i := int64(0); i < n; i++ {
		runtime.Gosched()
	}
	wg.Wait()
	fmt.Printf("ns_per_op %.2f\n", float64(nanotime()-t0)/float64(2*n))
}

func benchPingPong(n int64) {
	ping, pong := make(chan int64), make(chan int64)
	go func() {
		for i := int64(0); i < n; i++ {
			pong <- <-ping
		}
	}()
	t0 := nanotime()
	for i := int64(0); i < n; i++ {
		ping <- i
		if <-pong != i {
			panic("pingpong")
		}
	}
	fmt.Printf("ns_per_op %.2f\n", float64(nanotime()-t0)/float64(2*n))
}

func benchChanBuf(n int64) {
	c := make(chan int64, 128)
	go func() {
		for i := int64(0); i < n; i++ {
			c <- i
		}
	}()
	t0 := nanotime()
	var sum int64
	for i := int64(0); i < n; i++ {
		sum += <-c
	}
	el := nanotime() - t0
	if sum != n*(n-1)/2 {
		panic("chanbuf")
	}
	fmt.Printf("ns_per_op %.2f\n", float64(el)/float64(n))
}

func benchSpawn(n int64) {
	var wg sync.WaitGroup
	t0 := nanotime()
	for i := int64(0); i < n; i++ {
		wg.Add(1)
		go wg.Done()
		wg.Wait()
	}
	fmt.Printf("ns_per_op %.2f\n", float64(nanotime()-t0)/float64(n))
}

func benchBurst(n int64) {
	var wg sync.WaitGroup
	t0 := nanotime()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go wg.Done()
	}
	wg.Wait()
	fmt.Printf("ns_per_op %.2f\n", float64(nanotime()-t0)/float64(n))
	fmt.Printf("peak_rss_kb %d\n", peakRSSKB())
}

// skynet: the well-known benchmark, as its Go version is written.
func skynet(c chan int64, num, size int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64)
	step := size / 10
	for i := int64(0); i < 10; i++ {
		go skynet(rc, num+i*step, step)
	}
	var sum int64
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func benchSkynet() {
	c := make(chan int64)
	t0 := nanotime()
	go skynet(c, 0, 1000000)
	sum := <-c
	el := nanotime() - t0
	fmt.Printf("result %d\n", sum)
	fmt.Printf("ms %.2f\n", float64(el)/1e6)
	fmt.Printf("peak_rss_kb %d\n", peakRSSKB())
	if sum != 499999500000 {
		os.Exit(1)
	}
}

func benchSleep(n, us int64) {
	v := make([]int64, n)
	for i := range v {
		t0 := nanotime()
		time.Sleep(time.Duration(us) * time.Microsecond)
		v[i] = nanotime() - t0
	}
	med := median(v)
	fmt.Printf("us %.2f\n", float64(med)/1e3)
	fmt.Printf("p90_us %.2f\n", float64(v[n*9/10])/1e3)
	fmt.Printf("min_us %.2f\n", float64(v[0])/1e3)
}

// benchHandoff: A blocks in nanosleep(2) (a real system call: time.Sleep
// would park A in the scheduler instead) while B is runnable.
func benchHandoff(n int64) {
	v := make([]int64, n)
	done := make(chan int64, 1)
	ts := syscall.NsecToTimespec(20 * 1000 * 1000)
	for i := range v {
		go func() { done <- nanotime() }()
		t0 := nanotime()
		syscall.Nanosleep(&ts, nil)
		v[i] = <-done - t0
	}
	med := median(v)
	fmt.Printf("us %.2f\n", float64(med)/1e3)
	fmt.Printf("max_us %.2f\n", float64(v[n-1])/1e3)
}

func benchParked(n int64) {
	c := make(chan struct{})
	var started, finished sync.WaitGroup
	started.Add(int(n))
	finished.Add(int(n))
	before, t0 := rssNow(), nanotime()
	for i := int64(0); i < n; i++ {
		go func() {
			started.Done()
			<-c
			finished.Done()
		}()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond)
	after, t1 := rssNow(), nanotime()
	fmt.Printf("goroutines %d\n", runtime.NumGoroutine())
	close(c)
	finished.Wait()
	t2 := nanotime()
	fmt.Printf("kb %.3f\n", float64(after-before)/float64(n)/1024)
	fmt.Printf("start_ms %.1f\n", float64(t1-t0)/1e6)
	fmt.Printf("release_ms %.1f\n", float64(t2-t1)/1e6)
	fmt.Printf("peak_rss_kb %d\n", peakRSSKB())
}

func main() {
	b := ""
	if len(os.Args) > 1 {
		b = os.Args[1]
	}
	switch b {
	case "yield":
		benchYield(argOr(2, 1000000))
	case "pingpong":
		benchPingPong(argOr(2, 500000))
	case "chanbuf":
		benchChanBuf(argOr(2, 2000000))
	case "spawn":
		benchSpawn(argOr(2, 1000000))
	case "burst":
		benchBurst(argOr(2, 1000000))
	case "skynet":
		benchSkynet()
	case "sleep":
		benchSleep(argOr(2, 1000), argOr(3, 50))
	case "handoff":
		benchHandoff(argOr(2, 30))
	case "parked":
		benchParked(argOr(2, 100000))
	default:
		fmt.Fprintln(os.Stderr, "usage: gobench yield|pingpong|chanbuf|spawn|burst|skynet|sleep|handoff|parked [N]")
		os.Exit(2)
	}
	fmt.Printf("gomaxprocs %d\n", runtime.GOMAXPROCS(0))
}
