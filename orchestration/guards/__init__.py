"""What guards the text that passes between agents: where it came from and how far it is trusted
(``provenance.py``), untrusted text made inert (``neutralize.py``) and marked as data when it
enters a prompt (``spotlight.py``), and injection attempts found in it (``detect.py``)."""
