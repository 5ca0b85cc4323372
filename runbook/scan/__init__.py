"""The scan stage's library: one adapter per scanner turning its real output into
:class:`runbook.models.Finding` records, suppressions, the pure verdict, and the outputs
(SARIF 2.1.0, the findings JSON of the weekly review).

Adapters parse (pure, tested on real-format reports) apart from running the tool (I/O), so a
report from elsewhere (a CI job's Trivy run) goes through the same parser.
"""
