"""A tiny Terraform provider for devramps-local's tests (tests/terraform.rs), written with PyPI
`tf` 1.2.0 (plugin protocol 6, which Terraform 1.0.3 accepts).

One resource type, `devramps_thing`:

- `name` (string, required): changing it replaces the thing (RequiresReplace);
- `size` (number, optional): updated in place;
- `sleep_seconds` (number, optional): create and update sleep that long, stopping early when
  Terraform asks the provider to stop (StopProvider, which Terraform sends on SIGINT), with an
  error diagnostic, as a Go provider whose context is cancelled does;
- `fail` (bool, optional): create and update fail with an error diagnostic;
- `id` (string, computed).

A thing exists only in Terraform's state: nothing outside it is created.

Two changes to `tf`'s runner, both needed for cancel tests (see the shared notes on Terraform
1.0.3): SIGINT is ignored (Terraform signals its whole process group, the provider included;
Go providers ignore it too), and StopProvider does not stop the gRPC server: the provider keeps
serving until the controller's Shutdown.
"""

import signal
import threading
import uuid

from tf import provider as tf_provider
from tf import runner
from tf.iface import (
    CreateContext,
    DeleteContext,
    Provider,
    ReadContext,
    Resource,
    UpdateContext,
)
from tf.schema import Attribute, Schema
from tf.types import Bool, Number, String

# Set once Terraform asks the provider to stop (StopProvider).
STOPPING = threading.Event()


class Thing(Resource):
    """`devramps_thing`: a named thing with a size, kept only in Terraform's state."""

    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls):
        return "thing"

    @classmethod
    def get_schema(cls):
        return Schema(
            attributes=[
                Attribute("id", String(), computed=True),
                Attribute("name", String(), required=True, requires_replace=True),
                Attribute("size", Number(), optional=True),
                Attribute("sleep_seconds", Number(), optional=True),
                Attribute("fail", Bool(), optional=True),
            ]
        )

    def _work(self, ctx, state):
        """Sleeps and fails as asked; returns whether the thing may be written."""
        seconds = state.get("sleep_seconds") or 0
        if seconds and STOPPING.wait(float(seconds)):
            ctx.diagnostics.add_error(
                "devramps_thing interrupted",
                f"thing {state.get('name')!r} stopped after Terraform asked the provider to stop",
            )
            return False
        if state.get("fail"):
            ctx.diagnostics.add_error(
                "devramps_thing refused to apply",
                f"thing {state.get('name')!r} has fail = true",
            )
            return False
        return True

    def create(self, ctx: CreateContext, planned):
        if not self._work(ctx, planned):
            return None
        return {**planned, "id": "thing-" + uuid.uuid4().hex[:12]}

    def read(self, ctx: ReadContext, current):
        return current

    def update(self, ctx: UpdateContext, current, planned):
        if not self._work(ctx, planned):
            return current
        return {**planned, "id": current["id"]}

    def delete(self, ctx: DeleteContext, current):
        return None


class DevrampsProvider(Provider):
    """The provider `registry.terraform.io/devramps/devramps`."""

    def get_model_prefix(self):
        return "devramps_"

    def full_name(self):
        return "registry.terraform.io/devramps/devramps"

    def get_provider_schema(self, diags):
        return Schema(attributes=[])

    def validate_config(self, diags, config):
        pass

    def configure_provider(self, diags, config):
        pass

    def get_data_sources(self):
        return []

    def get_resources(self):
        return [Thing]


def _stop_provider(self, request, context):
    STOPPING.set()
    return tf_provider.pb.StopProvider.Response()


def _intercept_service(self, continuation, handler_call_details):
    result = continuation(handler_call_details)
    if handler_call_details.method == "/plugin.GRPCController/Shutdown":
        self.stopped = True
        if self.server:
            self.server.stop(grace=0)
    return result


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tf_provider.ProviderServicer.StopProvider = _stop_provider
    runner._ShutdownInterceptor.intercept_service = _intercept_service
    runner.run_provider(DevrampsProvider())


if __name__ == "__main__":
    main()
