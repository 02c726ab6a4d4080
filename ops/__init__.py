"""The on-call command's parts (`oncall.py`): the stack and its server, the remote scripts'
command lines, the audit timeline, deploy metrics and the dashboard."""
