# Every target that needs the local stack starts it first; `make stack-up`
# is harmless when the stack already runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: venv stack-install stack-up stack-down stack-status test unit demo bench sample-config test-keystone

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test]'
	touch $@

stack-install: venv
	stack/stack install

stack-up: venv
	stack/stack up

stack-down:
	stack/stack down

stack-status:
	stack/stack status

unit: venv
	$(PYTEST) -q tests/unit

# The suites that need no Keystone run first; then the stack switches to
# Keystone for tests/keystone and back (see test-keystone).
test: stack-up
	KURYRNET_REQUIRE_STACK=1 $(PYTEST) -q -ra --durations=15 \
		tests/unit tests/integration tests/e2e tests/reliability
	$(MAKE) test-keystone

demo: stack-up
	scripts/demo

bench: stack-up
	$(PY) -m benchmarks.run

sample-config: venv
	$(VENV)/bin/oslo-config-generator --namespace kuryrnet --output-file etc/kuryr.conf.sample

# Switches the stack to Keystone (tokens valid for 150 s), runs the Keystone
# tests, and switches back to noauth whether they pass or not. Each switch
# restarts Neutron. keystoneauth renews a token that has less than 120 s
# left before each request, so a shorter lifetime would mean a new token,
# and a validation in Neutron, for every request.
test-keystone: venv
	STACK_KEYSTONE=1 KEYSTONE_TOKEN_EXPIRATION=150 stack/stack up
	KURYRNET_REQUIRE_STACK=1 $(PYTEST) -q -ra --durations=5 tests/keystone; status=$$?; \
		stack/stack up; exit $$status
