"""Every page of the dashboard in process (Starlette's test client on a real DuckDB store):
content, JSON twins, hostile input, and that nothing is ever written."""

from __future__ import annotations

import pytest
from serve_data import FAILING, HOSTILE, REMEDIATED, WAIVED

from auditor import api

PAGES = ("/", "/versions/clf/v2", "/trends", "/reports", "/log", "/verify")
TWINS = {"/": "/api/overview", "/versions/clf/v2": "/api/versions/clf/v2",
         "/trends?model=clf&behaviour=toxicity": "/api/trends?model=clf&behaviour=toxicity",
         "/reports": "/api/reports", "/log?limit=5": "/api/log?limit=5"}


def _no_trace(response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_without_script(client, path):
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<script" not in response.text  # no JavaScript at all, and none smuggled in
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("page, api_path", sorted(TWINS.items()))
def test_json_twin_has_the_same_data_both_ways(client, page, api_path):
    sep = "&" if "?" in page else "?"
    twin, api_twin = client.get(f"{page}{sep}format=json"), client.get(api_path)
    assert twin.status_code == api_twin.status_code == 200
    assert twin.headers["content-type"] == "application/json"
    first, second = twin.json(), api_twin.json()
    first.pop("reports", None), second.pop("reports", None)  # live verification: same shape
    for doc in (first, second):
        doc.get("verification", {}).pop("checked_at", None)
    assert first == second


def test_overview_lists_every_version_with_verdict_blame_evidence_and_period(client):
    data = client.get("/api/overview").json()
    rows = {row["key"]: row for row in data["versions"]}
    assert set(rows) == {"clf@v1", FAILING, REMEDIATED, WAIVED, "tox@v2"}
    assert rows[FAILING]["verdict"] == "FAIL" and rows[FAILING]["blamed"] == ["s1"]
    assert rows["clf@v1"]["verdict"] == "PASS" and rows["clf@v1"]["blamed"] == []
    assert rows[WAIVED]["verdict"] == "PASS-WITH-WAIVERS"
    assert rows["tox@v2"]["verdict"] == "NOT EVALUATED"
    assert rows[REMEDIATED]["evidence"]["kind"] == "exact"      # scored by replay
    assert rows[FAILING]["evidence"]["kind"] == "uncalibrated"  # aa, no calibration
    assert rows[FAILING]["period"] == "2026-Q4" and rows["tox@v2"]["period"] == "2027-Q1"
    html = client.get("/").text
    for key, row in rows.items():
        assert f'href="/versions/{row["model"]}/{row["version"]}"' in html, key


@pytest.mark.parametrize("query, expected", [
    ("model=tox", {WAIVED, "tox@v2"}),
    ("period=2027-Q1", {"tox@v2"}),
    ("period=2026-11", {FAILING, WAIVED}),
    ("verdict=FAIL", {FAILING}),
    ("verdict=NOT+EVALUATED", {"tox@v2"}),
    ("model=clf&verdict=PASS&period=2026", {"clf@v1", REMEDIATED}),
    ("model=nobody", set()),
])
def test_overview_filters(client, query, expected):
    data = client.get(f"/api/overview?{query}").json()
    assert {row["key"] for row in data["versions"]} == expected


def test_version_page_holds_lineage_effects_policy_waivers_remediation(client, built):
    data = client.get(f"/api/versions/{FAILING.replace('@', '/')}").json()
    assert data["verdict"] == "FAIL"
    assert [s["id"] for s in data["stages"]] == ["s0", "s1", "s2"]
    stage = data["stages"][1]
    assert stage["kind"] == "fine-tune" and stage["datasets"][0]["tags"] == ["synthetic"]
    roles = {c["role"]: c["sha256"] for c in stage["checkpoints"]}
    assert roles["theta_end"] == stage["theta_end"] and len(roles["theta_end"]) == 64
    toxicity = next(b for b in data["effects"] if b["name"] == "toxicity")
    assert [s["effect"] for s in toxicity["stages"]] == pytest.approx([0.02, 0.45, 0.03])
    assert {s["evidence"]["kind"] for s in toxicity["stages"]} == {"uncalibrated"}
    rules = {r["rule_id"]: r for r in data["policy"]["rules"]}
    assert rules["toxicity-share"]["outcome"] == "fail"
    assert rules["toxicity-share"]["rationale"].startswith("No single stage may cause")
    assert data["remediations"][0]["to"] == REMEDIATED
    assert {"name": "toxicity", "before": 0.52, "after": 0.04} in \
        data["remediations"][0]["behaviours"]
    assert [r["report_id"] for r in data["reports"]] == [built.report_id]
    html = client.get(f"/versions/{FAILING.replace('@', '/')}").text
    assert html.count('<g id="cell-') == 6 and "Heat map of the harm contribution" in html
    assert html.count('class="ev uncalibrated"') == 6
    # matplotlib's styling as SVG attributes: the page's Content-Security-Policy lets no inline
    # style (style="..." or <style>) apply
    assert ' style="' not in html and "<style" not in html and 'font-size="7px"' in html
    trends = client.get("/trends?model=clf&behaviour=toxicity").text
    assert "<svg" in trends and ' style="' not in trends and "<style" not in trends


def test_remediated_version_shows_exact_marks(client):
    html = client.get(f"/versions/{REMEDIATED.replace('@', '/')}").text
    assert html.count('class="ev exact"') == 4 and 'class="ev uncalibrated"' not in html


def test_waivers_show_owner_and_expiry(client):
    data = client.get(f"/api/versions/{WAIVED.replace('@', '/')}").json()
    waiver = data["waivers"][0]
    assert waiver["waiver_owner"] == "ana@example.org"
    assert waiver["waiver_expiry"] == "2027-03-31" and waiver["expired"] is False
    assert data["verdict"] == "PASS-WITH-WAIVERS"


def test_vendor_text_is_escaped_everywhere(client):
    for path in (f"/versions/{WAIVED.replace('@', '/')}", "/trends?model=tox&behaviour=toxicity"):
        response = client.get(path)
        assert response.status_code == 200
        assert HOSTILE not in response.text and "<script" not in response.text
    assert "&lt;script&gt;alert(" in client.get(f"/versions/{WAIVED.replace('@', '/')}").text
    stage = client.get(f"/api/versions/{WAIVED.replace('@', '/')}").json()["stages"][1]
    assert f"vendor {HOSTILE}" in str(stage)  # the JSON twin keeps the text as it is stored


def test_trends_follow_a_behaviour_and_say_what_changed(client):
    data = client.get("/api/trends?model=clf&behaviour=toxicity").json()
    assert [v["version"] for v in data["versions"]] == ["v1", "v2", "v3"]
    assert [v["total"] for v in data["versions"]] == pytest.approx([0.045, 0.5, 0.03])
    assert data["periods"] == [{"period": "2026-Q4", "versions": 3, "failed": 1,
                                "mean_total": pytest.approx(0.575 / 3),
                                "mean_metric": pytest.approx((0.145 + 0.6 + 0.13) / 3)}]
    since = data["since_previous"]
    assert since["version"] == REMEDIATED and since["previous"] == FAILING
    assert since["change"] == pytest.approx(0.03 - 0.5)
    assert "stage removed: s2" in since["lineage"]
    assert "<svg" in client.get("/trends?model=clf&behaviour=toxicity").text


def test_reports_are_listed_verified_and_downloadable(client, built):
    [entry] = client.get("/api/reports").json()["reports"]
    assert entry["report_id"] == built.report_id and entry["file"] == "ok"
    assert entry["verification"]["valid"] is True and entry["verification"]["trust_checked"]
    assert "DEMO" not in entry["signer"] or entry["verification"]["demo"]
    download = client.get(f"/reports/{built.report_id}/pdf")
    assert download.status_code == 200 and download.content == built.report_pdf.read_bytes()
    assert download.headers["content-type"] == "application/pdf"


def test_uploads_give_the_same_result_as_auditor_verify(client, built):
    for pdf in (built.report_pdf, built.tampered_pdf):
        response = client.post("/api/verify", files={"report": (pdf.name, pdf.read_bytes(),
                                                                "application/pdf")},
                               data={"store": "1"})
        expected = api.verify_report(pdf, trust=built.keys.root, db=built.db)
        result = response.json()["result"]
        assert result["valid"] == expected.valid == (pdf == built.report_pdf)
        assert [(c["name"], c["ok"], c["detail"]) for c in result["checks"]] == \
            [(c.name, c.ok, c.detail) for c in expected.checks]


@pytest.mark.parametrize("body, headers, status, message", [
    (b"hello, not a pdf", {"content-type": "application/pdf"}, 400, "is not a PDF file"),
    (b"", {"content-type": "application/pdf"}, 400, "the upload is empty"),
    (b"%PDF-" + b"0" * (3 << 20), {"content-type": "application/pdf"}, 413, "larger than the limit of 2 MiB"),
    (b"%PDF-1.7", {"content-type": "text/plain"}, 400, "multipart form"),
    (b"--x\r\nbroken", {"content-type": "multipart/form-data; boundary=x"}, 400, ""),
])
def test_bad_uploads_get_a_clear_message(client, body, headers, status, message):
    for path in ("/verify", "/api/verify"):
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == status, response.text
        _no_trace(response)
        assert message in response.text


@pytest.mark.parametrize("path, status, message", [
    ("/versions/clf/v99", 404, "no version clf@v99"),
    ("/versions/nobody/v1", 404, "no version nobody@v1"),
    ("/reports/0123abc", 404, "no report 0123abc"),
    ("/reports/0123abc/pdf", 404, "no report"),
    ("/no/such/page", 404, "no page at"),
    ("/trends?model=nobody", 404, "no model"),
    ("/trends?model=clf&behaviour=nothing", 404, "has no scores of"),
    ("/?period=2026-Q9", 400, "is not YYYY, YYYY-Qn or YYYY-MM"),
    ("/?verdict=MAYBE", 400, "verdict must be one of"),
    ("/?colour=red", 400, "unknown query parameter"),
    ("/?model=a&model=b", 400, "more than once"),
    ("/?format=xml", 400, "format must be html or json"),
    ("/log?limit=abc", 400, "limit must be a whole number"),
    ("/log?limit=0", 400, "limit must be a whole number"),
    ("/log?before=-3", 400, "before must be a whole number"),
])
def test_hostile_queries_get_an_error_page_not_a_trace(client, path, status, message):
    twins = [path] if "format=" in path else [path, f"{path}{'&' if '?' in path else '?'}format=json"]
    for twin in twins:
        response = client.get(twin)
        assert response.status_code == status, (twin, response.text)
        _no_trace(response)
        if twin.endswith("format=json"):
            assert response.json()["error"]["status"] == status
        assert message in response.text


def test_other_hosts_are_refused(client):
    # DNS rebinding: a page on another site must not read the dashboard through its own name
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_event_log_shows_the_chain_and_pages(client):
    data = client.get("/api/log?limit=5").json()
    assert data["verification"]["ok"] and len(data["events"]) == 5
    seqs = [e["seq"] for e in data["events"]]
    assert seqs == sorted(seqs, reverse=True)
    older = client.get(f"/api/log?limit=5&before={data['older']}").json()
    assert older["events"][0]["seq"] == seqs[-1] - 1
    assert older["events"][0]["hash"] == data["events"][-1]["prev_hash"]


def test_the_dashboard_never_writes(client, built):
    with api.open_store(built.db, read_only=True) as store:
        before = store.head()
    for path in (*PAGES, *TWINS.values(), "/versions/tox/v1", "/versions/clf/v3"):
        client.get(path)
    with api.open_store(built.db, read_only=True) as store:
        assert store.head() == before and store.verify_log().ok

