#!/usr/bin/python3
# tests/e2e/71-slowloris-no-idle-timeout.py: the slowloris attack of 67-slowloris.py with
# limits.stream_idle_timeout set to 0 (no stream idle timeout). limits.header_timeout (2 s)
# must still cut off every dribbling connection: the header timeout does not depend on the
# stream idle sweep (it used to run only inside it, so with the idle timeout off a header block
# could be held open for good).
import importlib.util, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2raw import attack_test

spec = importlib.util.spec_from_file_location(
    "slowloris", os.path.join(os.path.dirname(os.path.abspath(__file__)), "67-slowloris.py"))
slowloris = importlib.util.module_from_spec(spec)
spec.loader.exec_module(slowloris)
attack_test("slowloris-no-idle-timeout", slowloris.attack, cut_within_s=5,
            cfg_extra="limits: {header_timeout: 2s, stream_idle_timeout: 0}\n")
