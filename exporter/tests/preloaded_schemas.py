"""Imported by preloaded.py's server only: dbt validates its projects, profiles and nodes
against JSON schemas it builds on first use in each process (about 2 s of CPU per `dbt build` of
integration_tests, 0.8 s per cio-export run). Built here once, the forked commands find them
made (dbt keeps them in an lru_cache on each class)."""

from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.adapters.postgres.connections import PostgresCredentials
from dbt.artifacts.resources.v1.config import Hook, NodeConfig, TestConfig
from dbt.artifacts.resources.v1.model import ModelConfig
from dbt.artifacts.resources.v1.seed import SeedConfig
from dbt.contracts.graph.nodes import GenericTestNode, HookNode, ModelNode, SeedNode
from dbt.contracts.graph.unparsed import UnparsedModelUpdate, UnparsedNodeUpdate
from dbt.contracts.project import Configuration, PackageConfig, ProfileConfig, Project, ProjectFlags
from dbt.contracts.selection import SelectorFile

for kind in (DuckDBCredentials, PostgresCredentials, Hook, NodeConfig, TestConfig, ModelConfig, SeedConfig,
             GenericTestNode, HookNode, ModelNode, SeedNode, UnparsedModelUpdate, UnparsedNodeUpdate,
             Configuration, PackageConfig, ProfileConfig, Project, ProjectFlags, SelectorFile):
    kind.json_schema()
