package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Result is what one workload measured.
type Result struct {
	Workload     string  `json:"workload"`
	Nodes        int     `json:"nodes"`
	Members      int     `json:"members,omitempty"`
	Senders      int     `json:"senders,omitempty"`
	Window       int     `json:"window,omitempty"` // sends in flight per sender
	Groups       int     `json:"groups,omitempty"`
	MLS          bool    `json:"real_mls"`
	PayloadBytes int     `json:"payload_bytes,omitempty"`
	Seconds      float64 `json:"seconds"`
	// Receivers is how many members receive each message: members-1,
	// or, with send-only senders (senders-only), members-senders.
	Receivers int `json:"receivers,omitempty"`
	// Accepted counts messages the server answered; Delivered, pushes
	// received by the members (each message reaches Receivers of them);
	// Lost, deliveries that never came.
	Accepted        int64   `json:"accepted"`
	Delivered       int64   `json:"delivered"`
	Lost            int64   `json:"lost"`
	Errors          int64   `json:"errors"`
	FirstError      string  `json:"first_error,omitempty"`
	DecryptErrors   int64   `json:"decrypt_errors,omitempty"`
	AcceptedPerSec  float64 `json:"accepted_per_sec"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	// Latency is send-to-receive: from the sender's write to each
	// receiver's read of the push, in milliseconds.
	Latency Percentiles `json:"latency_ms"`
	// Conns is the number of WebSockets opened; ConnsHeld, with the idle
	// workload, how many still answered a ping at the end.
	Conns     int `json:"conns"`
	ConnsHeld int `json:"conns_held,omitempty"`
	// RSS is the resident memory of each server process before and after
	// the connections were opened; RSSPerConnKiB divides the growth by
	// the connections (idle workload).
	RSS           []RSS   `json:"server_rss,omitempty"`
	RSSPerConnKiB float64 `json:"rss_per_conn_kib,omitempty"`
	ConnectPerSec float64 `json:"connects_per_sec,omitempty"`
	// ServerCPU is the CPU time the server processes used while the
	// messages were sent and delivered, and BenchCPU this process's: on a
	// machine shared with other work, CPU per message is steadier than
	// messages per second.
	ServerCPU float64 `json:"server_cpu_seconds,omitempty"`
	BenchCPU  float64 `json:"bench_cpu_seconds,omitempty"`
	// ServerCPUPerMsg is ServerCPU per accepted message, in
	// milliseconds (and per delivery).
	ServerCPUPerMsgMs      float64 `json:"server_cpu_ms_per_msg,omitempty"`
	ServerCPUPerDeliveryMs float64 `json:"server_cpu_ms_per_delivery,omitempty"`
	// MachineBusy is the share of the whole machine's CPU time that was
	// busy meanwhile (everything on it: servers, databases, this process,
	// other work).
	MachineBusy float64 `json:"machine_busy,omitempty"`
}

// cpuSample is the CPU time used so far by the servers and this process,
// and the machine's busy and total CPU time (/proc/stat, all CPUs).
type cpuSample struct{ server, bench, busy, total float64 }

func sampleCPU(pids []int) cpuSample {
	var s cpuSample
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) in parentheses.
		_, rest, ok := strings.Cut(string(b), ") ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s.server += (ut + st) / 100 // USER_HZ is 100 on Linux
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			s.total += n / 100
			if i != 3 && i != 4 { // idle, iowait
				s.busy += n / 100
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.bench = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return s
}

func (r *Result) setCPU(before, after cpuSample) {
	r.ServerCPU = after.server - before.server
	r.BenchCPU = after.bench - before.bench
	if t := after.total - before.total; t > 0 {
		r.MachineBusy = (after.busy - before.busy) / t
	}
	if r.Accepted > 0 {
		r.ServerCPUPerMsgMs = r.ServerCPU * 1000 / float64(r.Accepted)
	}
	if r.Delivered > 0 {
		r.ServerCPUPerDeliveryMs = r.ServerCPU * 1000 / float64(r.Delivered)
	}
}

// Percentiles of latency, in milliseconds, over N deliveries.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// RSS is a process's resident memory (VmRSS) in KiB.
type RSS struct {
	PID       int   `json:"pid"`
	BeforeKiB int64 `json:"before_kib"`
	AfterKiB  int64 `json:"after_kib"`
}

func (r *Result) setRSS(pids []int, before, after []int64, conns int) {
	var grown int64
	for i := range before {
		r.RSS = append(r.RSS, RSS{PID: pids[i], BeforeKiB: before[i], AfterKiB: after[i]})
		grown += after[i] - before[i]
	}
	if conns > 0 && len(before) > 0 {
		r.RSSPerConnKiB = float64(grown) / float64(conns)
	}
}

// readRSS reads VmRSS of each process, in KiB (-1 where it cannot).
func readRSS(pids []int) []int64 {
	out := make([]int64, len(pids))
	for i, pid := range pids {
		out[i] = -1
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
				out[i], _ = strconv.ParseInt(v, 10, 64)
			}
		}
		f.Close()
	}
	return out
}

// WriteJSON writes the results as one JSON document.
func WriteJSON(w io.Writer, env Environment, rs []*Result) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(struct {
		Environment Environment `json:"environment"`
		Results     []*Result   `json:"results"`
	}{env, rs})
}

// Environment describes where the figures were taken.
type Environment struct {
	Servers []string `json:"servers"`
	Store   string   `json:"store,omitempty"`
	Bus     string   `json:"bus,omitempty"`
	CPUs    int      `json:"cpus"`
	Load1   string   `json:"loadavg_at_start"`
	Go      string   `json:"go"`
}

// WriteTable writes the results as a table for people.
func WriteTable(w io.Writer, env Environment, rs []*Result) {
	fmt.Fprintf(w, "hush bench: %d node(s) %s", len(env.Servers), strings.Join(env.Servers, ","))
	if env.Store != "" {
		fmt.Fprintf(w, ", store %s, bus %s", env.Store, env.Bus)
	}
	fmt.Fprintf(w, "; %d CPUs, load average %s at start\n\n", env.CPUs, env.Load1)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tnodes\tmembers\tsenders\twindow\taccepted/s\tdelivered/s\tp50 ms\tp95 ms\tp99 ms\tlost\terrors\tconns\tRSS/conn KiB\tsrv CPU s\tbench CPU s\tmachine busy\t")
	for _, r := range rs {
		perConn := "-"
		if r.RSSPerConnKiB != 0 {
			perConn = fmt.Sprintf("%.1f", r.RSSPerConnKiB)
		}
		conns := strconv.Itoa(r.Conns)
		if r.ConnsHeld != 0 || r.Workload == "idle" {
			conns = fmt.Sprintf("%d/%d", r.ConnsHeld, r.Conns)
		}
		srv := "-"
		if r.ServerCPU > 0 {
			srv = fmt.Sprintf("%.1f", r.ServerCPU)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t%s\t%s\t%.1f\t%.0f%%\t\n",
			r.Workload, r.Nodes, r.Members, r.Senders, r.Window, r.AcceptedPerSec, r.DeliveredPerSec,
			r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Lost, r.Errors, conns, perConn, srv, r.BenchCPU, 100*r.MachineBusy)
	}
	tw.Flush()
	for _, r := range rs {
		if r.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", r.Workload, r.FirstError)
		}
		if r.DecryptErrors > 0 {
			fmt.Fprintf(w, "%s: %d messages failed to decrypt\n", r.Workload, r.DecryptErrors)
		}
		for _, m := range r.RSS {
			if r.Workload == "idle" {
				fmt.Fprintf(w, "%s: server RSS %d → %d KiB\n", r.Workload, m.BeforeKiB, m.AfterKiB)
			}
		}
	}
}
