import pytest
from tests.runs.harness import run_to_rest
from runs.models import StepRun
from tests.runs.conftest import make_flow  # noqa

pytestmark = pytest.mark.django_db

@pytest.mark.parametrize("expr", ["{{ range }}", "{{ range(3) }}", "{{ input.items }}", "{{ 'a'.upper }}", "{{ [1,2]|map('string') }}", "{{ cycler }}", "x{{ range }}", "x{{ cycler }}", "{{ dict }}"])
def test_x(make_flow, expr):
    flow = make_flow([{"id": "t", "type": "transform", "config": {"output": expr}}], output_type="json")
    run = run_to_rest(flow)
    print(expr, run.status, run.error, repr(run.output))
