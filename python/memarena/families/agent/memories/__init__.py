"""The agent memories of the ``agent`` family (``agent_memory=<name>``), one module each.

Each is an :class:`memarena.api.AgentMemory` registered in :data:`AGENT_MEMORIES`
(the family's plugin returns them from ``memarena_register_agent_memories``).
"""

from __future__ import annotations

from memarena.api import AgentMemory
from memarena.families.agent.memories.amem import AMem
from memarena.families.agent.memories.flat_rag import FlatRAG
from memarena.families.agent.memories.mem0 import Mem0
from memarena.families.agent.memories.memgpt import MemGPT
from memarena.families.agent.memories.memorybank import MemoryBank
from memarena.families.agent.memories.scm import SCM
from memarena.families.agent.memories.tim import ThoughtMemory

__all__ = ["AGENT_MEMORIES", "SCM", "AMem", "FlatRAG", "Mem0", "MemGPT", "MemoryBank", "ThoughtMemory"]

#: The agent memories this family registers, in sweep order.
AGENT_MEMORIES: tuple[type[AgentMemory], ...] = (FlatRAG, MemoryBank, AMem, ThoughtMemory, SCM, MemGPT, Mem0)
