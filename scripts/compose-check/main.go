// compose-check reads the deployment files the way the tools that run them do, and prints what they
// understood as JSON, for the tests in tests/deployment/ to check:
//
//	compose-check compose FILE [ENV_FILE]  the project compose-go (the library of `docker compose`) loads,
//	                                       interpolated, normalised and consistency-checked
//	compose-check dashboard FILE           a Grafana dashboard, strictly decoded into Grafana's dashboard model
//	                                       (unknown fields, wrong types and missing required fields fail):
//	                                       its panels, their datasources and queries
//	compose-check promql                   PromQL expressions (a JSON list on stdin) parsed by Prometheus's own
//	                                       parser: the metric names each selects, and each selector's label
//	                                       matchers
//	compose-check dockerfile FILE          the checks `docker build --check` runs (BuildKit's Dockerfile
//	                                       frontend and linter, every stage), offline: base images are not
//	                                       fetched (each resolves to an empty image with a standard PATH)
//
// Built and cached by scripts/install-compose-check.sh. Exit status 1 with the error on stderr when a file
// does not load.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var (
		out any
		err error
	)
	switch os.Args[1] {
	case "compose":
		if len(os.Args) < 3 || len(os.Args) > 4 {
			usage()
		}
		envFile := ""
		if len(os.Args) == 4 {
			envFile = os.Args[3]
		}
		out, err = loadCompose(os.Args[2], envFile)
	case "dashboard":
		if len(os.Args) != 3 {
			usage()
		}
		out, err = loadDashboard(os.Args[2])
	case "dockerfile":
		if len(os.Args) != 3 {
			usage()
		}
		out, err = lintDockerfile(os.Args[2])
	case "promql":
		if len(os.Args) != 2 {
			usage()
		}
		out, err = parseQueries(os.Stdin)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", "  ")
	if err := encoder.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: compose-check compose FILE [ENV_FILE] | dashboard FILE | promql < queries.json | dockerfile FILE")
	os.Exit(2)
}

// loadCompose loads FILE as `docker compose -f FILE [--env-file ENV_FILE] config` does: variables from the
// process environment and ENV_FILE (required ones fail when unset), then normalisation and the consistency
// checks (services named by depends_on, volumes and networks declared, ...).
func loadCompose(file, envFile string) (any, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	options := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithOsEnv,
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	}
	if envFile != "" {
		options = append(options, cli.WithEnvFiles(envFile), cli.WithDotEnv)
	}
	projectOptions, err := cli.NewProjectOptions([]string{abs}, options...)
	if err != nil {
		return nil, err
	}
	project, err := cli.ProjectFromOptions(context.Background(), projectOptions)
	if err != nil {
		return nil, err
	}
	raw, err := project.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return json.RawMessage(raw), nil
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *datasource `json:"datasource"`
}

type panel struct {
	ID         *uint32     `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
}

type dashboardSummary struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion uint16  `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Rows          int     `json:"rows"`
}

func toDatasource(typ, uid *string) *datasource {
	if typ == nil && uid == nil {
		return nil
	}
	out := &datasource{}
	if typ != nil {
		out.Type = *typ
	}
	if uid != nil {
		out.UID = *uid
	}
	return out
}

// loadDashboard decodes FILE strictly into Grafana's dashboard model (the Grafana foundation SDK's types,
// generated from Grafana's schema), with the panel and query types of Grafana's core plugins registered.
func loadDashboard(file string) (any, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	plugins.RegisterDefaultPlugins()
	var strict dashboard.Dashboard
	if err := strictErrors(strict.UnmarshalJSONStrict(raw)); err != nil {
		return nil, fmt.Errorf("%s is not a Grafana dashboard:\n%w", file, err)
	}
	// The strict decoder has validated everything, but drops every panel that had no error (it returns its
	// empty error list as a non-nil error, see strictErrors): read the model again with the plain decoder.
	var model dashboard.Dashboard
	if err := json.Unmarshal(raw, &model); err != nil {
		return nil, fmt.Errorf("%s is not a Grafana dashboard: %w", file, err)
	}
	summary := dashboardSummary{Panels: []panel{}}
	if model.Uid != nil {
		summary.UID = *model.Uid
	}
	if model.Title != nil {
		summary.Title = *model.Title
	}
	summary.SchemaVersion = model.SchemaVersion
	var add func(p dashboard.Panel) error
	add = func(p dashboard.Panel) error {
		out := panel{ID: p.Id, Type: p.Type, Targets: []target{}}
		if p.Title != nil {
			out.Title = *p.Title
		}
		if p.Datasource != nil {
			out.Datasource = toDatasource(p.Datasource.Type, p.Datasource.Uid)
		}
		for _, query := range p.Targets {
			prom, ok := query.(*prometheus.Dataquery)
			if !ok {
				return fmt.Errorf("panel %q: a query of type %T, not a Prometheus one", out.Title, query)
			}
			t := target{Expr: prom.Expr}
			if prom.RefId != nil {
				t.RefID = *prom.RefId
			}
			if prom.Datasource != nil {
				t.Datasource = toDatasource(prom.Datasource.Type, prom.Datasource.Uid)
			}
			out.Targets = append(out.Targets, t)
		}
		summary.Panels = append(summary.Panels, out)
		return nil
	}
	for _, item := range model.Panels {
		if item.Panel != nil {
			if err := add(*item.Panel); err != nil {
				return nil, err
			}
		}
		if item.RowPanel != nil {
			summary.Rows++
			for _, nested := range item.RowPanel.Panels {
				if err := add(nested); err != nil {
					return nil, err
				}
			}
		}
	}
	return summary, nil
}

// strictErrors is the error of a strict decoding, or nil: the SDK's generated decoders return their list of
// errors (cog.BuildErrors) even when it is empty, which as an `error` is not nil.
func strictErrors(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

type matcher struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

type selector struct {
	Metric   string    `json:"metric"`
	Matchers []matcher `json:"matchers"`
}

type parsedQuery struct {
	Expr      string     `json:"expr"`
	Metrics   []string   `json:"metrics"`
	Selectors []selector `json:"selectors"`
	Error     string     `json:"error,omitempty"`
}

// parseQueries parses each expression of a JSON list with Prometheus's PromQL parser and lists the metric
// names its selectors name (by name or by a __name__ equality matcher), with each selector's other label
// matchers. Grafana's interval variables are replaced by a duration first, as Grafana does before it sends a
// query.
func parseQueries(in io.Reader) (any, error) {
	var exprs []string
	if err := json.NewDecoder(in).Decode(&exprs); err != nil {
		return nil, fmt.Errorf("stdin must be a JSON list of strings: %w", err)
	}
	promql := parser.NewParser(parser.Options{})
	results := make([]parsedQuery, 0, len(exprs))
	for _, expr := range exprs {
		result := parsedQuery{Expr: expr, Metrics: []string{}, Selectors: []selector{}}
		node, err := promql.ParseExpr(grafanaVariables(expr))
		if err != nil {
			result.Error = err.Error()
			results = append(results, result)
			continue
		}
		names := map[string]bool{}
		parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			found := selector{Metric: vs.Name, Matchers: []matcher{}}
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName {
					if m.Type == labels.MatchEqual {
						found.Metric = m.Value
					}
					continue
				}
				found.Matchers = append(found.Matchers, matcher{Name: m.Name, Type: m.Type.String(), Value: m.Value})
			}
			if found.Metric != "" {
				names[found.Metric] = true
			}
			result.Selectors = append(result.Selectors, found)
			return nil
		})
		for name := range names {
			result.Metrics = append(result.Metrics, name)
		}
		sort.Strings(result.Metrics)
		results = append(results, result)
	}
	return results, nil
}

// grafanaVariables replaces Grafana's built-in interval variables by durations, as Grafana does before it
// sends a query to Prometheus. Any other variable is left alone (and fails to parse: the dashboard has none).
func grafanaVariables(expr string) string {
	return strings.NewReplacer(
		"$__rate_interval", "1m",
		"${__rate_interval}", "1m",
		"$__interval", "30s",
		"${__interval}", "30s",
		"$__range", "1h",
		"${__range}", "1h",
	).Replace(expr)
}

// offlineImages answers BuildKit's base-image lookups without a registry: every image is an empty linux/amd64
// image whose only configuration is the usual PATH (so `ENV PATH=...:${PATH}` is defined, as it is in a real
// base image).
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(
	_ context.Context, ref string, _ sourceresolver.Opt,
) (string, digest.Digest, []byte, error) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},` +
		`"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}}`)
	return ref, digest.FromBytes(config), config, nil
}

type lintWarning struct {
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
	Line   int32  `json:"line"`
}

type dockerfileLint struct {
	Warnings []lintWarning `json:"warnings"`
	Error    string        `json:"error,omitempty"`
}

// lintDockerfile runs BuildKit's Dockerfile frontend over every stage of FILE with its linter on, as
// `docker build --check` does, and reports the warnings and the error (a Dockerfile that does not parse or
// whose stages do not resolve).
func lintDockerfile(file string) (any, error) {
	ctx := context.Background()
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	source := llb.Local("dockerfile")
	definition, err := source.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	sourceMap := llb.NewSourceMap(&source, filepath.Base(file), "Dockerfile", raw)
	sourceMap.Definition = definition
	results, err := dockerfile2llb.DockerfileLint(ctx, raw, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{BuildArgs: map[string]string{}},
		SourceMap:    sourceMap,
		MetaResolver: offlineImages{},
	})
	if err != nil {
		return nil, err
	}
	out := dockerfileLint{Warnings: []lintWarning{}}
	for _, warning := range results.Warnings {
		found := lintWarning{Rule: warning.RuleName, Detail: warning.Detail}
		if warning.Location != nil && len(warning.Location.Ranges) > 0 {
			found.Line = warning.Location.Ranges[0].Start.Line
		}
		out.Warnings = append(out.Warnings, found)
	}
	if results.Error != nil {
		out.Error = results.Error.Message
	}
	return out, nil
}
