"""The real server over HTTP: images by pair and side only, vote validation, concurrency, resume, token, CLI."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from noise_exp.human_eval.__main__ import main
from noise_exp.human_eval.pairs import annotator_sequence, image_for_side, shown_order
from noise_exp.rundir.votes import DB_NAME, read_votes
from tests.human_eval.helpers import LiveServer, make_run

REPO = Path(__file__).resolve().parents[2]


def post_vote(client: httpx.Client, annotator: str, pair_id: str, choice: str = "left") -> httpx.Response:
    return client.post("/api/votes", json={"annotator": annotator, "pair_id": pair_id, "choice": choice})


def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """GET with the request target sent verbatim (HTTP clients normalise '..' away before sending)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_page_next_pair_and_blinded_images(live_server: LiveServer):
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200 and "The richness of details" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        info = client.get("/api/info").json()
        assert info["total_pairs"] == 8 and len(info["criteria"]) == 5
        nxt = client.get("/api/next", params={"annotator": "alice"}).json()
        pair = live_server.pair_set.by_id()[nxt["pair"]["pair_id"]]
        assert nxt["progress"] == {"done": 0, "total": 8} and nxt["pair"]["prompt"] == pair.prompt
        assert "variant" not in str(nxt)  # the page is never told which variant is where
        for side in ("left", "right"):
            image = client.get("/api/image", params={"pair_id": pair.pair_id, "side": side, "annotator": "alice"})
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            assert image.content == image_for_side("alice", pair, side).read_bytes()


def test_path_traversal_is_refused(live_server: LiveServer):
    secret = live_server.pair_set.root.parent / "secret.txt"
    secret.write_text("top secret")
    pair_id = live_server.pair_set.pairs[0].pair_id
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        for bad_pair in ("../secret.txt", "../../../../etc/passwd", "/etc/passwd", "images/0_stable.png"):
            response = client.get("/api/image", params={"pair_id": bad_pair, "side": "left", "annotator": "a"})
            assert response.status_code == 404 and "unknown pair_id" in response.json()["error"]
        response = client.get("/api/image", params={"pair_id": pair_id, "side": "../../secret.txt", "annotator": "a"})
        assert response.status_code == 422 and "side" in response.json()["error"]
    for target in ("/../secret.txt", "/..%2fsecret.txt", "/%2e%2e/%2e%2e/etc/passwd", "/results.csv",
                   "/images/0_stable.png", f"/{DB_NAME}", "/api/../../secret.txt", "/static/../../secret.txt"):
        status, body = raw_get(live_server.url, target)
        assert status in (400, 404), target
        assert b"top secret" not in body and b"root:" not in body and b"PNG" not in body


def test_image_replaced_by_an_outside_symlink_after_start_is_refused(live_server: LiveServer):
    secret = live_server.pair_set.root.parent / "secret.png"
    secret.write_bytes(b"top secret")
    pair = live_server.pair_set.pairs[0]
    params = {"pair_id": pair.pair_id, "side": "left", "annotator": "alice"}
    image = image_for_side("alice", pair, "left")
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        assert client.get("/api/image", params=params).status_code == 200
        image.unlink()
        os.symlink(secret, image)  # swapped after the server checked it at start
        response = client.get("/api/image", params=params)
    assert response.status_code == 404 and b"top secret" not in response.content
    assert "no longer inside the served folder" in response.json()["error"]


def test_request_bodies_over_the_limit_are_refused_unread(live_server: LiveServer):
    pair_id = live_server.pair_set.pairs[0].pair_id
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        big = b'{"annotator": "a", "pair_id": "' + b"x" * 50_000_000 + b'", "choice": "left"}'
        response = client.post("/api/votes", content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413 and "over the limit of 16384" in response.json()["error"]
        chunked = client.post("/api/votes", content=iter([b'{"annotator": "a"}']))  # no Content-Length
        assert chunked.status_code == 411
        assert post_vote(client, "alice", pair_id).status_code == 201  # a normal vote still goes through


def test_malformed_and_duplicate_votes_are_refused(live_server: LiveServer):
    pair_id = live_server.pair_set.pairs[0].pair_id
    bad_bodies = {
        "malformed JSON body": b"{not json",
        "choice": b'{"annotator": "alice", "pair_id": "%s", "choice": "up"}' % pair_id.encode(),
        "annotator": b'{"pair_id": "%s", "choice": "left"}' % pair_id.encode(),
        "winner": b'{"annotator": "alice", "pair_id": "%s", "choice": "left", "winner": "x"}' % pair_id.encode(),
    }
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        for expected, body in bad_bodies.items():
            response = client.post("/api/votes", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 422 and expected in response.json()["error"], response.text
        response = post_vote(client, "alice", "no/such/pair")
        assert response.status_code == 404 and "unknown pair_id" in response.json()["error"]
        for bad_name in ("<script>", "alice\n", " alice", "alice ", "x" * 65):
            response = post_vote(client, bad_name, pair_id)
            assert response.status_code == 422 and "annotator" in response.json()["error"], bad_name
        assert read_votes(live_server.store.path) == []

        assert post_vote(client, "alice", pair_id, "tie").status_code == 201
        response = post_vote(client, "alice", pair_id, "right")
        assert response.status_code == 409 and "already voted" in response.json()["error"]
    [stored] = read_votes(live_server.store.path)
    assert (stored.choice, stored.winner) == ("tie", "tie")


def test_concurrent_annotators_lose_no_vote(tmp_path: Path):
    with LiveServer(make_run(tmp_path / "run", n_prompts=15)) as server:
        pairs = server.pair_set.pairs
        jobs = [(name, pair, choice) for pair in pairs for name, choice in (("alice", "left"), ("bob", "right"))]
        with httpx.Client(base_url=server.url, timeout=30) as client, ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda job: post_vote(client, job[0], job[1].pair_id, job[2]).status_code, jobs))
            racing = list(pool.map(lambda _: post_vote(client, "carol", pairs[0].pair_id).status_code, range(6)))
        assert statuses == [201] * len(jobs) == [201] * 60
        assert sorted(racing) == [201] + [409] * 5
        votes = read_votes(server.store.path)
        assert len(votes) == 61
        for stored in votes:
            pair = server.pair_set.by_id()[stored.pair_id]
            left, right = shown_order(stored.annotator, pair)
            assert (stored.left_variant, stored.right_variant) == (left, right)
            assert stored.winner == (left if stored.choice == "left" else right)


def test_resume_serves_the_next_unvoted_pair_after_a_restart(run_folder: Path):
    with LiveServer(run_folder) as server:
        sequence = annotator_sequence("alice", server.pair_set.pairs)
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for pair in sequence[:3]:
                assert post_vote(client, "alice", pair.pair_id).json()["status"] == "recorded"
    with LiveServer(run_folder) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        nxt = client.get("/api/next", params={"annotator": "alice"}).json()
        assert nxt["pair"]["pair_id"] == sequence[3].pair_id and nxt["progress"] == {"done": 3, "total": 8}
        fresh = client.get("/api/next", params={"annotator": "bob"}).json()
        assert fresh["pair"]["pair_id"] == annotator_sequence("bob", server.pair_set.pairs)[0].pair_id
        for pair in sequence[3:]:
            post_vote(client, "alice", pair.pair_id)
        done = client.get("/api/next", params={"annotator": "alice"}).json()
        assert done == {"finished": True, "progress": {"done": 8, "total": 8}, "pair": None}


def test_token_guards_the_api(run_folder: Path):
    with LiveServer(run_folder, token="correct-horse") as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/").status_code == 200  # the page holds no data; it reads the token from its URL
        assert client.get("/api/info").status_code == 401
        assert client.get("/api/info", headers={"X-Token": "wrong-horse"}).json() == {"error": "missing or wrong token"}
        assert client.get("/api/info", headers={"X-Token": "correct-horse"}).status_code == 200
        assert client.get("/api/info", params={"token": "correct-horse"}).status_code == 200


def test_cli_refuses_to_bind_beyond_loopback_without_token(run_folder: Path, capsys):
    assert main(["serve", str(run_folder), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    assert main(["serve", str(run_folder / "nowhere")]) == 2


@pytest.mark.slow
def test_cli_serve_killed_keeps_every_acknowledged_vote(run_folder: Path, tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "noise_exp.human_eval", "serve", str(run_folder), "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    pairs = client.get("/api/info").json()["total_pairs"]
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()
                    time.sleep(0.2)
            assert pairs == 8
            for choice in ("left", "right", "tie"):
                pair_id = client.get("/api/next", params={"annotator": "dana"}).json()["pair"]["pair_id"]
                assert post_vote(client, "dana", pair_id, choice).status_code == 201
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        server.stdout.close()

    assert main(["export", str(run_folder), "--out", str(tmp_path / "votes.csv")]) == 0
    exported = pd.read_csv(tmp_path / "votes.csv")
    assert len(exported) == 3 and set(exported["choice"]) == {"left", "right", "tie"}
    assert {"annotator", "pair_id", "left_variant", "right_variant", "winner", "created_at"} <= set(exported.columns)
    assert main(["analyze", str(run_folder), "--csv"]) == 0
    assert pd.read_csv(run_folder / "human_winning_rates.csv")["n_votes"].sum() == 3
