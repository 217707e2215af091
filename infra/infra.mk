# Infrastructure targets, included by the root Makefile (which defines VENV, PY and STAMP).
#
#   make synth                                  synthesize offline into cdk.out/, then lint the templates
#   make synth CDK_CONTEXT="-c buffered=true"   the same with more context parameters (see cdk.json)
#   make infra-test                             only the template tests in tests/infra/
#
# Synth needs no AWS credentials and no Docker: the account and region are given explicitly, the
# Lambda asset is bundled by pip on this machine, and nothing is looked up in an AWS account.

CDK_ACCOUNT ?= 123456789012
CDK_REGION ?= eu-west-1
CDK_CONTEXT ?=
CDK := node_modules/.bin/cdk

.PHONY: synth infra-test

# The pinned CDK CLI from package-lock.json; re-installed only when the lock file changes.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## synth: cdk synth offline with the pinned CLI (cdk-nag gates it), then cfn-lint gating on errors
synth: $(STAMP) node_modules/.installed
	@rm -rf cdk.out
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_VERSION_CHECK=1 AWS_EC2_METADATA_DISABLED=true \
		$(CDK) synth --no-notices --quiet -c account=$(CDK_ACCOUNT) -c region=$(CDK_REGION) $(CDK_CONTEXT)
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/*.template.json

## infra-test: the stack's template tests (synthesize in-process; no CLI needed)
infra-test: $(STAMP)
	$(PY) -m pytest -n 2 -q tests/infra
