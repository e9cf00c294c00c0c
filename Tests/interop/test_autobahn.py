"""The Autobahn WebSocket conformance cases (RFC 6455) against the gateway's WebSocket layer,
run by kosoku (PyPI; Tests/setup.sh installs it) in fuzzingclient mode.

The broker runs with `http_test_echo = true`: `/echo` is then a WebSocket echo endpoint (text
and binary messages sent back as they came), for these cases only; `/mqtt` shares its framing
code. kosoku takes the URL with the path (`kosoku -m fuzzingclient -i CASE ... -o DIR
ws://127.0.0.1:PORT/echo`; it writes Autobahn-format reports, `index.json` per agent and case,
and exits non-zero when a case fails).

One test per section (1 framing, 2 ping/pong, 3 reserved bits, 4 opcodes, 5 fragmentation,
6 UTF-8, 7 close handshake, 9 limits and performance); every case must come out as Autobahn
accepts it: behavior OK, NON-STRICT or INFORMATIONAL, and behaviorClose OK or
INFORMATIONAL. The assertion lists each failing case with its verdicts and the close codes.

Section 9 (messages of 64 KiB to 16 MiB, in one frame or fragmented, and 1000-message
round trips) takes long on a debug build: by default only 9.1.1-9.1.3 and 9.2.1-9.2.3 (text
and binary messages of 64 KiB, 256 KiB, 1 MiB) run; `PARLEY_AUTOBAHN_FULL=1` runs every 9.*
case (with a longer time bound, `PARLEY_AUTOBAHN_TIMEOUT`, default 900 s).
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from chat import chat_templates  # noqa: F401
from httpraw import gateway  # noqa: F401

FULL = os.environ.get("PARLEY_AUTOBAHN_FULL", "") not in ("", "0")
SECTION_TIMEOUT = float(os.environ.get("PARLEY_AUTOBAHN_TIMEOUT", "900" if FULL else "300"))
SECTIONS = {
    "1": ["1.*"], "2": ["2.*"], "3": ["3.*"], "4": ["4.*"], "5": ["5.*"], "6": ["6.*"], "7": ["7.*"],
    "9": ["9.*"] if FULL else ["9.1.1", "9.1.2", "9.1.3", "9.2.1", "9.2.2", "9.2.3"],
}
# Case counts of kosoku 0.1.0 for the selections above: a run that silently selects fewer
# (a renamed case, a kosoku change) fails instead of passing on less.
EXPECTED_CASES = {"1": 16, "2": 11, "3": 7, "4": 10, "5": 20, "6": 145, "7": 37, "9": 54 if FULL else 6}
GOOD_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
GOOD_CLOSE = {"OK", "INFORMATIONAL"}


def kosoku_bin():
    path = shutil.which("kosoku")
    if path is None:
        pytest.fail("kosoku is not installed (pip install kosoku; Tests/setup.sh does it)", pytrace=False)
    return path


def case_key(case_id):
    return [int(x) for x in case_id.split(".")]


@pytest.mark.parametrize("section", list(SECTIONS))
def test_autobahn_section(gateway, section):
    g = gateway(config="http_test_echo = true\n")
    out = tempfile.mkdtemp(prefix="parley-autobahn-")
    try:
        args = [kosoku_bin(), "-m", "fuzzingclient"]
        for sel in SECTIONS[section]:
            args += ["-i", sel]
        args += ["-o", out, f"ws://127.0.0.1:{g.http_port}/echo"]
        try:
            p = subprocess.run(args, capture_output=True, timeout=SECTION_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"kosoku section {section} did not finish within {SECTION_TIMEOUT:.0f}s", pytrace=False)
        index = os.path.join(out, "index.json")
        assert os.path.exists(index), (f"kosoku wrote no report (exit {p.returncode}):\n"
                                       f"{p.stdout.decode()[-2000:]}\n{p.stderr.decode()[-2000:]}")
        with open(index) as f:
            report = json.load(f)
        cases = {}
        for agent, per_case in report.items():
            cases.update(per_case)
        failures = []
        for cid in sorted(cases, key=case_key):
            v = cases[cid]
            if v["behavior"] not in GOOD_BEHAVIOR or v["behaviorClose"] not in GOOD_CLOSE:
                detail = ""
                rf = os.path.join(out, v.get("reportfile", ""))
                if v.get("reportfile") and os.path.exists(rf):
                    with open(rf) as f:
                        d = json.load(f)
                    detail = (f" remoteCloseCode={d.get('remoteCloseCode')} localCloseCode={d.get('localCloseCode')}"
                              f" result={d.get('result')!r} resultClose={d.get('resultClose')!r}"
                              f" description={d.get('description', '')[:160]!r}")
                failures.append(f"{cid}: behavior={v['behavior']} behaviorClose={v['behaviorClose']}"
                                f" duration={v.get('duration')}ms{detail}")
        assert not failures, (f"{len(failures)} of {len(cases)} Autobahn cases of section {section} failed:\n"
                              + "\n".join(failures))
        assert len(cases) == EXPECTED_CASES[section], \
            f"section {section}: {len(cases)} cases ran, expected {EXPECTED_CASES[section]}: {sorted(cases, key=case_key)}"
        assert p.returncode == 0, f"kosoku exit {p.returncode} with every case passing:\n{p.stderr.decode()[-2000:]}"
        assert g.broker.alive
    finally:
        shutil.rmtree(out, ignore_errors=True)
