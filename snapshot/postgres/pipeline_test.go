package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRestore stands in for the restore's connections: it records when each task starts and
// ends, and checks the pipeline's rules as tasks run.
type fakeRestore struct {
	t          *testing.T
	mu         sync.Mutex
	order      []string        // task names as they started
	loaded     map[string]bool // tables whose load ended
	onTable    map[string][]string
	running    int
	maxRunning int
	alone      string // a split load running
	// block, when set for a task, runs before it ends (a slow load).
	block map[string]func()
	fail  map[string]error
}

func newFakeRestore(t *testing.T) *fakeRestore {
	return &fakeRestore{t: t, loaded: map[string]bool{}, onTable: map[string][]string{}, block: map[string]func(){}, fail: map[string]error{}}
}

// taskName is "load TABLE", or an entry's name from the comment fakePlan starts it with.
func taskName(tk task) string {
	if tk.entry != nil {
		first, _, _ := strings.Cut(tk.entry.SQL, "\n")
		return strings.TrimPrefix(first, "-- ")
	}
	return "load " + strings.TrimPrefix(tk.step.Target, "public.")
}

func (f *fakeRestore) run(_ context.Context, _ int, tk task) error {
	name := taskName(tk)
	f.mu.Lock()
	f.order = append(f.order, name)
	f.running++
	f.maxRunning = max(f.maxRunning, f.running)
	if f.alone != "" {
		f.t.Errorf("%s started while the split load %s ran", name, f.alone)
	}
	if tk.split {
		if f.running != 1 {
			f.t.Errorf("split load %s started while %d other tasks ran", name, f.running-1)
		}
		f.alone = name
	}
	if tk.entry != nil {
		if !f.loaded[tk.table] {
			f.t.Errorf("%s started before the load of %s ended", name, tk.table)
		}
		others := f.onTable[tk.table]
		if len(others) > 0 && (tk.exclusive() || slices.ContainsFunc(others, func(o string) bool { return strings.HasSuffix(o, "_pkey") })) {
			f.t.Errorf("%s ran while %v held a lock on %s it waits for", name, others, tk.table)
		}
		f.onTable[tk.table] = append(f.onTable[tk.table], name)
	}
	f.mu.Unlock()
	if b := f.block[name]; b != nil {
		b()
	} else {
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running--
	if tk.split {
		f.alone = ""
	}
	if tk.entry != nil {
		f.onTable[tk.table] = slices.DeleteFunc(f.onTable[tk.table], func(o string) bool { return o == name })
	} else {
		f.loaded[tk.table] = f.fail[name] == nil
	}
	return f.fail[name]
}

// fakePlan makes loads of tables (name:bytes, largest first as the manifest lists them) and a
// post-data script of entries, "INDEX table name" or "CONSTRAINT table name" (whose names
// end in _pkey).
func fakePlan(tables []string, defs []string) ([]task, []task) {
	return fakeSplitPlan(tables, defs, 1, 0)
}

// fakeSplitPlan is fakePlan for workers, loading tables of splitBytes or more split.
func fakeSplitPlan(tables []string, defs []string, workers int, splitBytes int64) ([]task, []task) {
	var steps []Step
	for _, tb := range tables {
		name, size, _ := strings.Cut(tb, ":")
		var n int64
		fmt.Sscan(size, &n)
		steps = append(steps, Step{Action: "load", Target: "public." + name, Bytes: n, loads: []load{{table: &TableRecord{Table: Table{Schema: "public", Name: name}}}}})
	}
	loads, loaded := loadTasks(steps, workers, splitBytes)
	var entries []entry
	for _, d := range defs {
		f := strings.Fields(d)
		sql := fmt.Sprintf("-- %s\nCREATE INDEX %[1]s ON public.%s USING btree (id);", f[2], f[1])
		if f[0] == "CONSTRAINT" {
			sql = fmt.Sprintf("-- %s\nALTER TABLE ONLY public.%s\n    ADD CONSTRAINT %[1]s PRIMARY KEY (id);", f[2], f[1])
		}
		entries = append(entries, entry{Type: f[0], SQL: sql})
	}
	early, late := splitEarly(entries, loaded)
	if len(late) > 0 {
		panic(fmt.Sprintf("fakePlan: entries %v name no loaded table", late))
	}
	return loads, early
}

// TestPipelineBuildsIndexesWhileOthersLoadFake: a small table's constraint is built while a
// large table still loads. The large load waits for it: a restore that built indexes only
// after every load would never get there.
func TestPipelineBuildsIndexesWhileOthersLoadFake(t *testing.T) {
	f := newFakeRestore(t)
	loads, early := fakePlan([]string{"big:1000", "small:10"}, []string{"CONSTRAINT big big_pkey", "INDEX big big_at", "CONSTRAINT small small_pkey"})
	built := make(chan struct{})
	f.block["small_pkey"] = func() { close(built) }
	f.block["load big"] = func() {
		select {
		case <-built:
		case <-time.After(10 * time.Second):
			t.Error("the large table's load ended without the small table's constraint built meanwhile")
		}
	}
	if err := newPipeline(2, loads, early, f.run).Run(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if len(f.order) != 5 || f.maxRunning != 2 {
		t.Errorf("ran %d tasks, %d at most at once; want 5, 2: %q", len(f.order), f.maxRunning, f.order)
	}
}

// TestPipelineOrderFake: with one worker the order is exact: the largest table first, its
// entries before smaller tables' loads; with more, every rule holds whatever the timing.
func TestPipelineOrderFake(t *testing.T) {
	tables := []string{"a:300", "b:200", "c:100", "d:0"}
	defs := []string{"INDEX c c_at", "CONSTRAINT a a_pkey", "INDEX a a_at", "INDEX a a_by", "CONSTRAINT b b_pkey", "INDEX d d_at", "CONSTRAINT a a_key_pkey"}
	for _, tc := range []struct {
		workers int
		want    []string // the order of starts, when deterministic
	}{
		{1, []string{"load a", "a_pkey", "a_at", "a_by", "a_key_pkey", "load b", "b_pkey", "load c", "c_at", "load d", "d_at"}},
		{2, nil},
		{3, nil},
		{8, nil},
	} {
		t.Run(fmt.Sprintf("workers=%d", tc.workers), func(t *testing.T) {
			f := newFakeRestore(t)
			loads, early := fakePlan(tables, defs)
			if err := newPipeline(tc.workers, loads, early, f.run).Run(testContext(t)); err != nil {
				t.Fatal(err)
			}
			if len(f.order) != len(tables)+len(defs) || f.maxRunning > tc.workers {
				t.Errorf("ran %d tasks, %d at most at once; want %d, at most %d", len(f.order), f.maxRunning, len(tables)+len(defs), tc.workers)
			}
			if tc.want != nil && !slices.Equal(f.order, tc.want) {
				t.Errorf("order %q, want %q", f.order, tc.want)
			}
		})
	}
}

// TestPipelineRunsASplitLoadAloneFake: a table large enough to load over every connection
// starts once the tasks before it ended, and nothing starts while it loads; smaller tables
// and every build still run on every worker.
func TestPipelineRunsASplitLoadAloneFake(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tables     []string
		splitBytes int64
		wantSplit  int
	}{
		{"the largest only", []string{"big:1000", "mid:600", "small:10", "tiny:5"}, 700, 1},
		{"the two largest", []string{"big:1000", "mid:600", "small:10", "tiny:5"}, 500, 2},
		{"none large enough", []string{"big:1000", "mid:600", "small:10", "tiny:5"}, 5000, 0},
		{"every table", []string{"big:1000", "mid:600", "small:10", "tiny:5"}, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRestore(t)
			loads, early := fakeSplitPlan(tc.tables, []string{"CONSTRAINT big big_pkey", "INDEX big big_at", "INDEX mid mid_at", "CONSTRAINT small small_pkey", "INDEX tiny tiny_at"}, 3, tc.splitBytes)
			split := 0
			for _, l := range loads {
				if l.split {
					split++
				}
			}
			if err := newPipeline(3, loads, early, f.run).Run(testContext(t)); err != nil {
				t.Fatal(err)
			}
			if split != tc.wantSplit || len(f.order) != 9 {
				t.Errorf("%d loads split, %d tasks ran; want %d, 9", split, len(f.order), tc.wantSplit)
			}
		})
	}
	if loads, _ := fakeSplitPlan([]string{"big:1000"}, nil, 1, 1); loads[0].split {
		t.Error("a load was split with one worker")
	}
}

// TestPipelineStopsAtTheFirstFailureFake: a failed load is the pipeline's error, its table's
// entries never run, and no task starts after it.
func TestPipelineStopsAtTheFirstFailureFake(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failing string
		want    []string // tasks that must not have started
	}{
		{"first load", "load a", []string{"a_pkey", "load b", "b_pkey"}},
		{"a constraint", "a_pkey", []string{"load b", "b_pkey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeRestore(t)
			cause := errors.New("connection refused")
			f.fail[tc.failing] = cause
			loads, early := fakePlan([]string{"a:20", "b:10"}, []string{"CONSTRAINT a a_pkey", "CONSTRAINT b b_pkey"})
			if err := newPipeline(1, loads, early, f.run).Run(testContext(t)); !errors.Is(err, cause) {
				t.Fatalf("Run: %v, want %v", err, cause)
			}
			for _, not := range tc.want {
				if slices.Contains(f.order, not) {
					t.Errorf("%q started after %q failed (order %q)", not, tc.failing, f.order)
				}
			}
		})
	}
}

// TestPipelineEndsWithItsContextFake: a cancelled restore stops waiting workers and returns.
func TestPipelineEndsWithItsContextFake(t *testing.T) {
	f := newFakeRestore(t)
	ctx, cancel := context.WithCancel(testContext(t))
	f.block["load a"] = cancel
	loads, early := fakePlan([]string{"a:20", "b:10"}, []string{"CONSTRAINT a a_pkey", "CONSTRAINT b b_pkey"})
	err := newPipeline(1, loads, early, f.run).Run(ctx)
	if !errors.Is(err, context.Canceled) || len(f.order) != 1 {
		t.Errorf("Run: %v after %q; want context.Canceled after the first load", err, f.order)
	}
}

func TestEntryTable(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want string // "" when not recognised
	}{
		{"SET default_tablespace = '';\n\n--\n-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: x\n--\n\nALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);\n", `"public"."users"`},
		{"CREATE INDEX traces_at ON public.traces USING btree (at);", `"public"."traces"`},
		{"CREATE UNIQUE INDEX u ON ONLY public.events USING btree (id, at);", `"public"."events"`},
		{`CREATE INDEX "Weird "" idx" ON "My Schema"."Tab.le" USING btree (x);`, `"My Schema"."Tab.le"`},
		{"ALTER TABLE public.t\n    ADD CONSTRAINT c CHECK ((x > 0)) NOT VALID;", `"public"."t"`},
		{"ALTER TABLE ONLY public.t_$1 ADD CONSTRAINT k UNIQUE (x);", `"public"."t_$1"`},
		{"ALTER INDEX public.parent_idx ATTACH PARTITION public.child_idx;", ""},
		{"ALTER DOMAIN public.d ADD CONSTRAINT c CHECK (VALUE > 0);", ""},
		{"COMMENT ON INDEX public.i IS 'x';", ""},
		{"CREATE INDEX i ON t USING btree (x);", ""},        // not schema-qualified
		{`CREATE INDEX i ON public."unterminated`, ""},      // a broken quote
		{"ALTER TABLE ONLY public.t", ""},                   // nothing after the name
		{"CREATE INDEX i ON public.T USING btree (x);", ""}, // upper case is always quoted
	} {
		got, ok := entryTable(entry{SQL: tc.sql})
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("entryTable(%q) = %q, %v; want %q", tc.sql, got, ok, tc.want)
		}
	}
}

// TestSplitEarly: only the INDEX and CONSTRAINT entries of loaded tables run early; the rest
// keeps the script's order.
func TestSplitEarly(t *testing.T) {
	entries := []entry{
		{Type: "CONSTRAINT", SQL: "ALTER TABLE ONLY public.events\n    ADD CONSTRAINT events_pkey PRIMARY KEY (id, at);"},
		{Type: "CONSTRAINT", SQL: "ALTER TABLE ONLY public.events_2026_05\n    ADD CONSTRAINT events_2026_05_pkey PRIMARY KEY (id, at);"},
		{Type: "INDEX", SQL: "CREATE INDEX users_email ON public.users USING btree (email);"},
		{Type: "COMMENT", SQL: "COMMENT ON INDEX public.users_email IS 'x';"},
		{Type: "INDEX ATTACH", SQL: "ALTER INDEX public.events_pkey ATTACH PARTITION public.events_2026_05_pkey;"},
		{Type: "FK CONSTRAINT", SQL: "ALTER TABLE ONLY public.sessions\n    ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);"},
		{Type: "INDEX", SQL: "CREATE INDEX mv_at ON public.mv USING btree (at);"},
	}
	loaded := map[string]int64{Ident("public", "events_2026_05"): 5, Ident("public", "users"): 7, Ident("public", "sessions"): 1}
	early, late := splitEarly(entries, loaded)
	var got []string
	for _, e := range early {
		got = append(got, fmt.Sprintf("%d %s %d", e.seq, e.table, e.bytes))
	}
	if want := []string{`1 "public"."events_2026_05" 5`, `2 "public"."users" 7`}; !slices.Equal(got, want) {
		t.Errorf("early %q, want %q", got, want)
	}
	var types []string
	for _, e := range late {
		types = append(types, e.Type)
	}
	if want := []string{"CONSTRAINT", "COMMENT", "INDEX ATTACH", "FK CONSTRAINT", "INDEX"}; !slices.Equal(types, want) {
		t.Errorf("late %q, want %q", types, want)
	}
}

// TestChunkFeedCutsAtRowEnds: a split load's readers get every row once, whole (rows longer
// than the cutter's buffer too), each ending its input with io.EOF; when the object fails at
// its end (a checksum mismatch), no reader ends with io.EOF, so no COPY of a split load can
// commit.
func TestChunkFeedCutsAtRowEnds(t *testing.T) {
	var src strings.Builder
	for i := range 60000 {
		n := i % 97
		if i%20000 == 1 {
			n = 300 << 10 // longer than the cutter's read buffer
		}
		fmt.Fprintf(&src, "%d\t%s\n", i, strings.Repeat("x", n))
	}
	for _, tc := range []struct {
		name    string
		fail    error
		readers int
	}{
		{"one reader", nil, 1},
		{"three readers", nil, 3},
		{"object fails at its end", errors.New("checksum mismatch"), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			feed := newChunkFeed(tc.readers)
			var obj io.Reader = strings.NewReader(src.String())
			if tc.fail != nil {
				obj = io.MultiReader(obj, failingReader{tc.fail})
			}
			go feed.cut(obj)
			outs := make([]string, tc.readers)
			errs := make([]error, tc.readers)
			var wg sync.WaitGroup
			for i := range tc.readers {
				wg.Go(func() {
					var b strings.Builder
					_, errs[i] = io.Copy(&b, feed.reader())
					outs[i] = b.String()
				})
			}
			wg.Wait()
			var rows []string
			for i, out := range outs {
				if out != "" && !strings.HasSuffix(out, "\n") {
					t.Errorf("reader %d's input ends inside a row", i)
				}
				if tc.fail == nil && errs[i] != nil || tc.fail != nil && !errors.Is(errs[i], tc.fail) {
					t.Errorf("reader %d ended with %v, want %v", i, errs[i], tc.fail)
				}
				rows = append(rows, strings.SplitAfter(out, "\n")...)
			}
			if tc.fail != nil {
				return
			}
			noEmpty := func(s string) bool { return s == "" }
			rows = slices.DeleteFunc(rows, noEmpty)
			want := slices.DeleteFunc(strings.SplitAfter(src.String(), "\n"), noEmpty)
			slices.Sort(rows)
			slices.Sort(want)
			if !slices.Equal(rows, want) {
				t.Errorf("readers got %d rows, want the object's %d, each once", len(rows), len(want))
			}
		})
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }
