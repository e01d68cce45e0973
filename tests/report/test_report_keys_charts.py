"""keys init (CLI), timestamped signing, and the SVG charts."""

from __future__ import annotations

import html
import re
import stat

from cryptography import x509

from auditor.cli import main
from auditor.report import charts, heatmap


def test_keys_init_writes_a_ca_and_signer(tmp_path, capsys):
    folder = tmp_path / "keys"
    assert main(["keys", "init", str(folder), "--demo", "--name", "CI signer"]) == 0
    assert "DEMO" in capsys.readouterr().out
    cert = x509.load_pem_x509_certificate((folder / "signer.pem").read_bytes())
    root = x509.load_pem_x509_certificate((folder / "root.pem").read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == root.subject and "demo identity" in cert.subject.rfc4514_string()
    assert stat.S_IMODE((folder / "signer.key.pem").stat().st_mode) == 0o600
    assert main(["keys", "init", str(folder), "--no-passphrase"]) == 2  # never overwrite silently


def test_timestamped_signature_validates(tmp_path):
    from weasyprint import HTML

    from auditor import api
    from auditor.report.sign import SignerSettings, load_signer, sign_pdf
    from auditor.report.verify import verify_report

    keys = api.init_keys(tmp_path / "k")
    stamper = _dummy_timestamper(keys)
    pdf = HTML(string="<p>hello</p>").write_pdf()
    signed = sign_pdf(pdf, load_signer(SignerSettings(p12=keys.p12)), timestamper=stamper)
    path = tmp_path / "stamped.pdf"
    path.write_bytes(signed)
    from pyhanko.pdf_utils.reader import PdfFileReader

    with open(path, "rb") as handle:
        attrs = PdfFileReader(handle).embedded_signatures[0].signer_info["unsigned_attrs"]
        assert "signature_time_stamp_token" in [a["type"].native for a in attrs]
    result = verify_report(path, trust=keys.root)
    assert [c.ok for c in result.checks[:5]] == [True] * 5


def _dummy_timestamper(keys):
    """A self-signed TSA and pyHanko's DummyTimeStamper: a timestamp without a network."""
    from datetime import datetime, timedelta, timezone

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pyhanko.keys import load_cert_from_pemder, load_private_key_from_pemder_data
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name.from_rfc4514_string("CN=test TSA")
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.TIME_STAMPING]), True)
            .sign(key, hashes.SHA256()))
    path = keys.folder / "tsa.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tsa_key = load_private_key_from_pemder_data(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), passphrase=None)
    return DummyTimeStamper(tsa_cert=load_cert_from_pemder(str(path)), tsa_key=tsa_key)


BEHAVIOUR = {"name": "toxicity", "threshold": {"metric": "share", "value": 0.6,
                                               "rule": "r1", "comparator": "<="},
             "stages": [{"stage_id": "s0", "stage_kind": "pretrain", "effect": 0.2,
                         "share": 0.25, "harm": 0.2},
                        {"stage_id": "s1", "stage_kind": "alignment", "effect": 0.6,
                         "share": 0.75, "harm": 0.6}]}


def _alt(svg: str) -> str:
    match = re.match(r'<svg class="chart" role="img" aria-label="([^"]+)"', svg)
    assert match and f"<title>{match.group(1)}</title>" in svg
    return html.unescape(match.group(1))


def _stage(sid: str, kind: str, harm: float, mark: str) -> dict:
    return {"stage_id": sid, "stage_kind": kind, "harm": harm, "evidence_mark": mark}


def test_heatmap_has_a_cell_per_stage_and_behaviour():
    heatmap.forget()
    svg = charts.heatmap([BEHAVIOUR, BEHAVIOUR | {"name": "bias"}])
    assert svg.count("<g id=\"cell-") == 4 and svg.count(">0.6<") == 2  # a printed cell each
    assert "s1 (alignment)" in svg and "training stage" in svg and ">behaviour<" in svg
    assert "harm contribution" in svg and "\u22120.5" in svg and ">0.5<" in svg  # round ticks
    assert "s1 (alignment) on toxicity, 0.6" in _alt(svg)
    assert 'style="font: 8px' not in svg and "<text" in svg  # text kept as text (matplotlib)


def test_heatmap_cells_lie_over_the_image_with_titles():
    """One image (a pixel per cell) drawn by matplotlib; the cell overlay is placed with the
    axes' transform, so cell i, j covers pixel i, j of the image."""
    heatmap.forget()
    behaviours = [{"name": n, "stages": [_stage("s0", "pretrain", 0.1, "exact"),
                                          _stage("s1", "vendor-ft", float("nan"), "± 0.02"),
                                          _stage("s2", "alignment", -0.3, "uncalibrated")]}
                  for n in ("toxicity", "accuracy", "bias <x>")]
    svg = charts.heatmap(behaviours)
    image = re.search(r'<image [^>]*width="3" height="3" transform="matrix\(([^)]*)\)"', svg)
    sx, _, _, sy, x0, y0 = map(float, image.group(1).split())
    for i, j in ((0, 0), (2, 1), (1, 2)):
        rect = re.search(rf'<g id="cell-{i}-{j}"><rect x="([^"]+)" y="([^"]+)" '
                         r'width="([^"]+)" height="([^"]+)"', svg)
        x, y, w, h = map(float, rect.groups())
        assert abs(x - (x0 + j * sx)) < 0.01 and abs(y - (y0 + i * sy)) < 0.01
        assert abs(w - sx) < 0.01 and abs(h - sy) < 0.01
    assert "<title>s1 (vendor-ft) on bias &lt;x&gt;: n/a (estimate)</title>" in svg
    assert "<title>s2 (alignment) on toxicity: -0.3 (uncalibrated)</title>" in svg
    assert ">n/a<" in svg and "bias <x>" not in svg  # names are escaped
    # evidence: a marker layer per kind but the most common; the key names every kind
    assert "exact (replayed)" in svg and "estimate (± band in the table)" in svg
    assert "uncalibrated estimate" in svg and "unmarked: " in svg


def test_heatmap_with_one_evidence_kind_says_so_in_its_key():
    heatmap.forget()
    svg = charts.heatmap([{"name": "toxicity", "stages": [
        _stage("s0", "pretrain", 0.1, "exact"), _stage("s1", "sft", 0.2, "exact")]}])
    assert "every cell: exact (replayed)" in svg and "unmarked" not in svg


def test_the_evidence_key_lies_inside_the_heatmap_however_narrow():
    """Every evidence kind present makes the widest key; on a map of one to six behaviours it
    wraps onto more lines rather than running off the figure (measured by matplotlib)."""
    from matplotlib.backends.backend_agg import RendererAgg

    for count in (1, 2, 6):
        heatmap.forget()
        behaviours = [{"name": f"behaviour {q}", "stages": [
            _stage("pretrain", "pretrain", 0.1, "exact"), _stage("sft", "sft", 0.2, "± 0.1"),
            _stage("vendor-ft", "fine-tune", 0.3, "uncalibrated")]} for q in range(count)]
        svg = charts.heatmap(behaviours)
        assert "estimate (± band in the table)" in svg and "uncalibrated estimate" in svg
        frame = next(iter(heatmap._FRAMES.values()))
        fig = frame.fig
        renderer = RendererAgg(*(fig.get_size_inches() * fig.dpi), fig.dpi)
        key = fig.legends[0].get_window_extent(renderer)
        assert 0 <= key.x0 and key.x1 <= fig.bbox.width, (count, key, fig.bbox)
        assert 0 <= key.y0 and key.y1 <= frame.plot[1] * fig.bbox.height  # under the names


def test_a_repainted_heatmap_is_the_same_as_a_new_one():
    """Versions with the same stages and behaviours share a figure; repainting it with another
    grid gives the same SVG as drawing that grid on a new figure."""
    def grid(scale, marks):
        return [{"name": n, "stages": [_stage(f"s{i}", "sft", scale * (i - j + 0.5), m)
                                       for i, m in enumerate(marks)]}
                for j, n in enumerate(("a", "b", "c", "d"))]

    first = grid(0.1, ["exact", "uncalibrated", "± 0.1"])
    second = grid(3.0, ["± 0.2", "± 0.2", "exact"])
    heatmap.forget()
    new = charts.heatmap(second)
    heatmap.forget()
    charts.heatmap(first)
    repainted = charts.heatmap(second)
    assert len(heatmap._FRAMES) == 1 and repainted == new
    assert charts.heatmap(second) is repainted  # drawn before: kept by its digest


def test_a_large_heatmap_keeps_every_cell_but_prints_no_values():
    many = [BEHAVIOUR | {"name": f"b{q}"} for q in range(charts.LABELLED_CELLS // 2 + 1)]
    svg = charts.heatmap(many)
    assert svg.count("<g id=\"cell-") == 2 * len(many)
    assert ">0.6<" not in svg and ">0.2<" not in svg  # the values are in the table beside it
    small = charts.heatmap(many[:charts.LABELLED_CELLS // 2])
    assert small.count(">0.6<") == charts.LABELLED_CELLS // 2


def test_bars_share_on_a_common_axis_with_the_threshold():
    svg = charts.bars(BEHAVIOUR)
    assert "share of harm (0–1, common to every chart)" in svg
    assert all(f">{tick}<" in svg for tick in ("0.0", "0.2", "0.4", "0.6", "0.8", "1.0"))
    assert "threshold &lt;= 0.6 (r1)" in svg
    assert "#d55e00" in svg.lower() and "#2ca02c" not in svg.lower()  # Okabe–Ito, no green
    assert _alt(svg).startswith("Bar chart of each stage's share for toxicity: s0 0.25; s1 0.75")


def test_trend_names_the_model_and_keeps_every_series_visible():
    svg = charts.trend("t", ["m@v1", "m@v2", "m@v3"], {"a": [1.0, 2.0, None],
                                                      "b": [0.0, -1, 3]})
    assert "version of m" in svg and ">v3<" in svg and "value" in svg
    # two series: distinct colours, dash patterns and markers, so neither hides the other
    assert "#0072b2" in svg.lower() and "#d55e00" in svg.lower()
    assert "stroke-dasharray" in svg
    assert "across 3 versions (m@v1 to m@v3)" in _alt(svg)
    two = charts.trend("t", ["m@v1", "n@v1"], {"a": [0.281, -0.0293]})
    assert "model@version" in two and ">m@v1<" in two
    assert ">0.281<" not in two  # ticks are round numbers, not the data extremes
    assert charts.trend("t", [], {}) == ""
