"""The Go template subset used by --format, checked against what Go's
text/template (with docker's functions) prints for the same input."""

from __future__ import annotations

import pytest

from dockyard.cli.template import StrictFields, TemplateError, render

DOT = {
    "Name": "web",
    "Id": "sha256:abc",
    "Labels": {"a": "1", "b": "x<y"},
    "List": [1, 2, 3],
    "Config": {"Env": ["A=1", "B=2"], "Cmd": None, "Tty": False},
    "Size": 4261550,
    "Ratio": 1.5,
    "Empty": "",
    "Nested": [{"K": "v1"}, {"K": "v2"}],
}


@pytest.mark.parametrize("template, expected", [
    ("{{.Name}}", "web"),
    ("plain text", "plain text"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Labels}}", "map[a:1 b:x<y]"),
    ("{{.Config.Cmd}}", "<nil>"),
    ("{{.Nope}}", "<no value>"),
    ("{{.Config.Tty}}", "false"),
    ("{{.Size}}", "4261550"),
    ("{{.Ratio}}", "1.5"),
    ("{{.ID}}", "sha256:abc"),  # Go field name for JSON "Id"
    ("{{json .Labels}}", '{"a":"1","b":"x\\u003cy"}'),
    ("{{json .Config.Cmd}}", "null"),
    ("{{json .List}}", "[1,2,3]"),
    ('{{index .Labels "a"}}', "1"),
    ('{{index .Labels "zz"}}', ""),  # Go: the zero value of map[string]string's element
    ('{{index .Config.Cmd "zz"}}', ""),  # null Labels: a nil map in docker's struct
    ("{{index .List 1}}", "2"),
    ("{{index .Nested 1 | json}}", '{"K":"v2"}'),
    ("{{range .List}}[{{.}}]{{end}}", "[1][2][3]"),
    ("{{range $i, $e := .List}}{{$i}}={{$e}} {{end}}", "0=1 1=2 2=3 "),
    ("{{range $k, $v := .Labels}}{{$k}}:{{$v}};{{end}}", "a:1;b:x<y;"),
    ("{{range .Nested}}{{.K}},{{end}}", "v1,v2,"),
    ("{{range .Config.Cmd}}x{{else}}none{{end}}", "none"),
    ("{{range .List}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", "13"),
    ("{{range .List}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}", "1"),
    ("{{if .Name}}yes{{else}}no{{end}}", "yes"),
    ("{{if .Empty}}yes{{else}}no{{end}}", "no"),
    ("{{if .Nope}}a{{else if .Empty}}b{{else if .Name}}c{{else}}d{{end}}", "c"),
    ("{{with .Config}}{{.Env}}{{end}}", "[A=1 B=2]"),
    ("{{with .Config.Cmd}}x{{else}}nil{{end}}", "nil"),
    ("{{$x := .Name}}{{$x}}!", "web!"),
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ("{{$.Name}}{{range .List}}{{$.Name}}{{end}}", "webwebwebweb"),
    ('{{join .Config.Env ","}}', "A=1,B=2"),
    ('{{split "a:b:c" ":"}}', "[a b c]"),
    ("{{upper .Name}} {{lower \"ABC\"}} {{title \"hello world\"}}", "WEB abc Hello World"),
    ("{{.Name | upper}}", "WEB"),
    ("{{.Name | printf \"%s!\"}}", "web!"),
    ("{{println .Name 3}}", "web 3\n"),
    ("{{print .Name 3 4}}", "web3 4"),
    ('{{printf "%-6s|%5d|%q|%v|%x" .Name 42 "q" .List 255}}', 'web   |   42|"q"|[1 2 3]|ff'),
    ("{{pad .Name 1 2}}|", " web  |"),
    ("{{truncate .Name 2}}", "we"),
    ("{{len .List}} {{len .Labels}} {{len .Name}}", "3 2 3"),
    ('{{if eq .Name "db" "web"}}match{{end}}', "match"),
    ('{{if ne .Name "db"}}ne{{end}}', "ne"),
    ("{{if lt 1 2}}lt{{end}}{{if gt .Size 10}}gt{{end}}{{if le 2 2}}le{{end}}{{if ge 1 2}}ge{{end}}", "ltgtle"),
    ("{{and .Name .Size}} {{and .Empty .Size}}", "4261550 "),
    ('{{or .Empty "fallback"}} {{not .Empty}}', "fallback true"),
    ("{{/* a comment */}}x", "x"),
    ("a  {{- .Name -}}  b", "awebb"),
    ("{{- \" x \" -}}", " x "),
    ("{{(index .Config.Env 0)}}", "A=1"),
    ("{{(index .Nested 0).K}}", "v1"),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{\"esc\\t\"}}", "esc\t"),
])
def test_templates(template: str, expected: str) -> None:
    assert render(template, DOT) == expected


@pytest.mark.parametrize("template, fragment", [
    ("{{.Name", "unclosed action"),
    ("{{if .Name}}x", "without {{end}}"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("{{nofunc .Name}}", 'function "nofunc" not defined'),
    ("{{.Name \"x\"}}", "can't give argument to non-function"),
    ("{{index .List 9}}", "index out of range"),
    ("{{$nope}}", "undefined variable"),
    ("{{define \"x\"}}{{end}}", "not supported"),
    ("{{(.Name}}", "unexpected end of action"),
])
def test_template_errors(template: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as err:
        render(template, DOT)
    assert fragment in err.value.message


def test_strict_rows_reject_unknown_fields() -> None:
    assert render("{{.Tag}}", StrictFields(Tag="latest")) == "latest"
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        render("{{.Nope}}", StrictFields(Tag="latest"))
