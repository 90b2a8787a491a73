"""The randomized fault harness: a seed decides the data, the topology and the faults; the real daemon
runs it; an independent reference checks the union of every output.

    python -m tests.faults.harness --seed 1234          # replay one seed (from the repo root)
    python -m tests.faults.harness --seeds 1-200        # many, with a summary of the figures

scenario.py generates, cluster.py runs the processes and peers, runner.py plays a scenario,
checker.py computes the reference and compares.
"""
