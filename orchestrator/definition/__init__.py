"""The definition language: validation, graph algorithms, expressions and the markdown compiler.

Pure Python with no Django import, so the rules of what a valid orchestration is can be tested
in microseconds and reused by the engine.
"""

from orchestrator.definition.diff import diff_definitions
from orchestrator.definition.errors import DefinitionError, FieldError
from orchestrator.definition.expressions import TemplateError, evaluate, render
from orchestrator.definition.graph import topological_order
from orchestrator.definition.markdown import CompileResult, compile_markdown
from orchestrator.definition.nodes import NODE_TYPES
from orchestrator.definition.schema import validate_definition, validate_run_input

__all__ = [
    "NODE_TYPES",
    "CompileResult",
    "DefinitionError",
    "FieldError",
    "TemplateError",
    "compile_markdown",
    "diff_definitions",
    "evaluate",
    "render",
    "topological_order",
    "validate_definition",
    "validate_run_input",
]
