"""The registry under stress: SIGKILL in the middle of writes leaves a readable, consistent database
that the next start serves; two clients (the service and the CLI writing directly) adding and
removing at once keep it consistent."""
import os
import sqlite3
import threading
import time

from service_util import BERT_CLS_DIR, GPT2_DIR, Service, http


def check_db(path):
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("PRAGMA user_version").fetchone()[0] == 2
        orphans = con.execute("SELECT count(*) FROM inferences WHERE model_id NOT IN (SELECT id FROM models)")
        assert orphans.fetchone() == (0,)
        return {r[0]: r[1] for r in con.execute("SELECT name, id FROM models")}, \
            con.execute("SELECT count(*) FROM inferences").fetchone()[0]
    finally:
        con.close()


def test_sigkill_during_writes_leaves_a_consistent_database(tmp_path):
    s = Service(tmp_path).start()
    g = s.add("gpt", GPT2_DIR, max_length=2)
    c = s.add("cls", BERT_CLS_DIR)
    stop = threading.Event()
    counts = {"add": 0, "infer": 0}

    def churn(tag):
        i = 0
        while not stop.is_set():
            try:
                st, r = http("POST", s.url + "/models", {"name": f"{tag}-{i}", "model_path": BERT_CLS_DIR}, timeout=5)
                if st == 200 and i % 2:
                    http("DELETE", s.url + f"/models/{r['model_id']}/remove", timeout=5)
                counts["add"] += 1
            except OSError:
                return
            i += 1

    def infer():
        while not stop.is_set():
            try:
                http("POST", s.url + f"/models/{g}/generate", {"prompt": "the cat"}, timeout=5)
                http("POST", s.url + f"/models/{c}/classify", {"text": "a dog"}, timeout=5)
                counts["infer"] += 2
            except OSError:
                return

    threads = [threading.Thread(target=churn, args=(t,)) for t in ("a", "b")] + [threading.Thread(target=infer)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while (counts["add"] < 6 or counts["infer"] < 6) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    s.kill()  # SIGKILL while the writers are busy
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert counts["add"] > 5 and counts["infer"] > 5, counts

    models, n_inf = check_db(s.db)
    assert "gpt" in models and "cls" in models and n_inf > 0

    s2 = Service(tmp_path, models_dir=s.models_dir).start()
    try:
        listed = s2.get("/models")[1]
        assert sorted(m["name"] for m in listed) == sorted(models)
        assert all(not m["is_loaded"] for m in listed)
        assert s2.get("/models/summary")[1]["total_inferences"] == n_inf
        assert s2.post(f"/models/{c}/classify", {"text": "a cat"})[0] == 200
        assert s2.post("/models", {"name": "after-crash", "model_path": GPT2_DIR})[0] == 200
    finally:
        s2.stop()
    check_db(s.db)


def test_service_and_direct_cli_writing_at_once_stay_consistent(tmp_path):
    s = Service(tmp_path).start()
    errors = []
    n = 12

    def via_service():
        for i in range(n):
            st, r = s.post("/models", {"name": f"svc-{i}", "model_path": GPT2_DIR})
            if st != 200:
                errors.append(("svc add", i, r))
                continue
            if i % 3 == 0:
                st, r = s.delete(f"/models/{r['model_id']}/remove")
                if st != 200:
                    errors.append(("svc remove", i, r))

    def via_cli():
        for i in range(n):
            r = s.cli("add", f"cli-{i}", "--path", BERT_CLS_DIR, "--direct")
            if r.returncode != 0:
                errors.append(("cli add", i, r.stderr))
                continue
            if i % 3 == 0:  # removal: a plain SQLite client (the CLI's registry removal is not wired yet)
                con = sqlite3.connect(s.db, timeout=10)
                with con:
                    con.execute("PRAGMA foreign_keys = ON")
                    con.execute("DELETE FROM models WHERE name = ?", (f"cli-{i}",))
                con.close()

    try:
        threads = [threading.Thread(target=via_service), threading.Thread(target=via_cli)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        expected = {f"svc-{i}" for i in range(n) if i % 3} | {f"cli-{i}" for i in range(n) if i % 3}
        models, _ = check_db(s.db)
        assert set(models) == expected
        listed = {m["name"] for m in s.get("/models")[1]}
        assert listed == expected
        # a model the CLI registered directly is served on demand
        st, r = s.post("/models/cli-1/classify", {"text": "a dog"})
        assert st == 200, r
    finally:
        s.stop()
