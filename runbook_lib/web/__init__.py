"""The pages people open (host side): the records index ``/records`` (:mod:`.records`) and the
runbook page ``/runbooks/{slug}`` (:mod:`.runbooks`), rendered from Jinja templates with
autoescaping and one stylesheet, served with a script-free sandbox CSP by the receiver."""
