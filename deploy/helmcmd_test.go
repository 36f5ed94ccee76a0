package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"

	"github.com/tracevault/tracevault/internal/doccmd"
)

// TestReadmeHelmTemplateCommands runs every `helm template` command of the runbook as written,
// through the same install action `helm template` runs (client only, Helm's default
// Kubernetes version, the chart's kubeVersion checked). A restore at 3 a.m. once started with
// "chart requires kubeVersion … incompatible with Kubernetes v1.20.0" from exactly such a command.
func TestReadmeHelmTemplateCommands(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	values := readmeValuesFiles(t, string(data))
	cmds := helmTemplateCommands(string(data))
	if len(cmds) == 0 {
		t.Fatal("README.md shows no helm template command; this test reads them")
	}
	for _, words := range cmds {
		t.Run(strings.Join(words, " "), func(t *testing.T) {
			vals, showOnly := helmTemplateValues(t, words, values)
			install := action.NewInstall(&action.Configuration{})
			install.DryRun, install.ClientOnly, install.Replace = true, true, true
			install.ReleaseName, install.Namespace = "tv", "langfuse"
			rel, err := install.Run(loadChart(t), vals)
			if err != nil {
				t.Fatalf("helm template as written fails: %v", err)
			}
			if showOnly != "" && !strings.Contains(rel.Manifest, "# Source: tracevault/"+showOnly) {
				t.Errorf("--show-only %s: the chart renders no such template", showOnly)
			}
		})
	}
}

// helmTemplateCommands returns the words of each `helm template` command in a sh block of the
// Markdown text md, with continuation lines joined and the pipe into kubectl left out.
func helmTemplateCommands(md string) [][]string {
	var out [][]string
	for _, b := range doccmd.Blocks("README.md", md) {
		for _, c := range b.Commands() {
			if strings.HasPrefix(c.Text, "helm template ") {
				line, _, _ := strings.Cut(c.Text, "|")
				out = append(out, shellWords(line))
			}
		}
	}
	return out
}

// shellWords splits a command line as sh would for the forms the runbook uses: plain words and
// single-quoted ones.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// helmTemplateValues applies a command's -f and --set flags as helm does (files first, then
// --set in order); -f names one of the runbook's own values files.
func helmTemplateValues(t *testing.T, words []string, files map[string]string) (map[string]any, string) {
	t.Helper()
	vals := map[string]any{}
	var sets []string
	showOnly := ""
	for i := 0; i < len(words); i++ {
		flag := words[i]
		if !strings.HasPrefix(flag, "-") {
			continue
		}
		if i+1 >= len(words) {
			t.Fatalf("flag %s without a value", flag)
		}
		i++
		switch arg := words[i]; flag {
		case "-f", "--values":
			body, ok := files[arg]
			if !ok {
				t.Fatalf("-f %s: README.md shows no such values file", arg)
			}
			var layer map[string]any
			if err := yaml.Unmarshal([]byte(body), &layer); err != nil {
				t.Fatalf("%s: %v", arg, err)
			}
			vals = chartutil.MergeTables(layer, vals)
		case "--set":
			sets = append(sets, arg)
		case "--show-only", "-s":
			showOnly = arg
		case "-n", "--namespace":
		default:
			t.Fatalf("flag %s: this test does not know it; teach it", flag)
		}
	}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			t.Fatalf("--set %s: %v", s, err)
		}
	}
	return vals, showOnly
}

// readmeValuesFiles returns the runbook's values files by name, placeholders filled.
func readmeValuesFiles(t *testing.T, md string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, b := range regexp.MustCompile("(?s)```yaml\n(# (values-[a-z]+\\.yaml)\n.*?)```").FindAllStringSubmatch(md, -1) {
		files[b[2]] = strings.ReplaceAll(b[1], "<CLIENT_ID>", clientID)
	}
	return files
}
