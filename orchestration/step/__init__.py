"""The agent step's stages, each one small and testable alone, and the runner that composes them
(``runner.StepRunner``) to run one attempt of one step:

- ``claim``: the fence on the step row against a redelivered message; the attempt and its request;
- ``admit``: the agent's circuit breaker, then the call's worst case held on its spend caps;
- ``call``: the model, under the agent's deadline; what happened (``Call``);
- ``record``: result, trace, ledger and audit rows and the coordinator's decision in one
  transaction (the rows themselves are built in ``rows``);
- ``settle``: the call's real cost on the caps, once its ledger row is committed;
- ``route``: once the record is committed, what the coordinator decided goes out.
"""
