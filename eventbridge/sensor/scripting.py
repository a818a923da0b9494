"""Lua ``script`` filters / ``transform.script`` in a sandbox, and ``transform.jq``.

Argo runs these with gopher-lua and gojq (``pkg/sensors/dependencies/{filter,transform}.go``):

* filter ``script``: the event data (a JSON object) is the global table ``event``; the event
  passes when the script returns exactly ``true``.
* ``transform.script``: same input; the script must return a table, which becomes the new
  event data (a table with keys ``1..n`` becomes an array, otherwise an object).
* ``transform.jq``: the first output of the jq program over the data must be a JSON object;
  it becomes the new event data.

The Lua sandbox (lupa, Lua 5.4/5.5): scripts are loaded as text only into a fresh environment
holding ``event`` and safe functions (``string`` without ``dump``, ``table``, ``math``, ``utf8``,
``pairs``, ``ipairs``, ``next``, ``select``, ``type``, ``tostring``, ``tonumber``, ``error``,
``assert``, ``rawget``, ``rawset``, ``rawequal``, ``rawlen``, ``unpack``). There is no ``io``,
``os``, ``require``, ``load``, ``loadstring``, ``dofile``, ``loadfile``, ``debug``,
``collectgarbage``, ``coroutine``, ``pcall``/``xpcall`` (so the limit error cannot be caught),
``setmetatable``/``getmetatable`` and no access to Python. Limits: an instruction count (debug
hook), the runtime's memory (lupa ``max_memory``), the subject size and quantifier count of
pattern functions (Lua patterns backtrack in C where the hook cannot stop them: a call whose
worst case, (subject length + 1) ^ (quantifiers + 1), exceeds 1e8 steps is refused) and
``string.rep``.

jq runs in the ``jq`` C library, which has no step limit: a jq program that never ends blocks the
sensor. Sensor authors are trusted with that (document it; lint cannot prove termination).
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

from eventbridge.errors import ExprError

LUA_MEMORY = 32 * 1024 * 1024
LUA_INSTRUCTIONS = 2_000_000

_SANDBOX = r"""
local sethook, load, pcall, error, type, pairs, next = debug.sethook, load, pcall, error, type, pairs, next
local collect = collectgarbage
local real_string = string
local MAX_WORK, MAX_REP = 100000000, 1048576
real_string.dump = nil
local gmatch0, gsub0 = real_string.gmatch, real_string.gsub
-- Lua patterns backtrack in C, where the instruction hook cannot stop them: the worst case of a
-- pattern with q quantifiers over n bytes is about n^(q+1) steps, so refuse calls above MAX_WORK.
for _, name in ipairs({"find", "match", "gmatch", "gsub"}) do
  local original = real_string[name]
  real_string[name] = function(subject, pattern, ...)
    if type(subject) == "string" and type(pattern) == "string" then
      local unescaped = gsub0(pattern, "%%.", "")
      local quantifiers = 0
      for _ in gmatch0(unescaped, "[%*%+%-%?]") do quantifiers = quantifiers + 1 end
      if (#subject + 1) ^ (quantifiers + 1) > MAX_WORK then
        error("string." .. name .. ": pattern with " .. quantifiers .. " quantifiers is too costly on " ..
              #subject .. " bytes", 2)
      end
    end
    return original(subject, pattern, ...)
  end
end
local original_rep = real_string.rep
real_string.rep = function(s, n, sep)
  if type(s) == "string" and type(n) == "number" and (#s + #(sep or "")) * n > MAX_REP then
    error("string.rep: result too large", 2)
  end
  return original_rep(s, n, sep)
end
local function copy(source)
  local out = {}
  for key, value in pairs(source) do out[key] = value end
  return out
end
local safe = {
  string = real_string, table = table, math = math, utf8 = utf8,
  pairs = pairs, ipairs = ipairs, next = next, select = select, type = type,
  tostring = tostring, tonumber = tonumber, error = error, assert = assert,
  rawget = rawget, rawset = rawset, rawequal = rawequal, rawlen = rawlen, unpack = table.unpack,
}
local function check(script)
  local chunk, problem = load(script, "=script", "t", {})
  return problem
end
local function run(script, event, limit)
  local env = {}
  for key, value in pairs(safe) do
    env[key] = type(value) == "table" and copy(value) or value
  end
  env.event = event
  local chunk, problem = load(script, "=script", "t", env)
  if not chunk then error(problem, 0) end
  sethook(function() error("instruction limit exceeded", 0) end, "", limit)
  local ok, result = pcall(chunk)
  sethook()
  collect("collect")
  if not ok then error(result, 0) end
  return result
end
return run, check
"""


class LuaSandbox:
    """One Lua runtime (not thread-safe: calls are serialized) running scripts in fresh envs."""

    def __init__(self, *, memory: int = LUA_MEMORY, instructions: int = LUA_INSTRUCTIONS) -> None:
        try:
            from lupa import LuaRuntime  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as err:  # pragma: no cover - lupa is a dependency
            raise ExprError("Lua scripts need the 'lupa' package") from err
        self._runtime = LuaRuntime(
            unpack_returned_tuples=False, register_eval=False, register_builtins=False, max_memory=memory
        )
        self._run, self._check = self._runtime.execute(_SANDBOX)
        self._instructions = instructions
        self._lua_type = self._runtime.eval("type")
        self._lock = threading.Lock()

    def check(self, script: str) -> str | None:
        """Why ``script`` does not compile, or ``None``."""
        with self._lock:
            try:
                problem = self._check(script)
            except Exception as err:  # noqa: BLE001 - any Lua failure is a syntax problem here
                return str(err)
        return str(problem) if problem is not None else None

    def run(self, script: str, data: Any) -> Any:
        """Run ``script`` with ``event`` = data; return its first result converted to Python."""
        with self._lock:
            try:
                event = self._to_lua(data)
                result = self._run(script, event, self._instructions)
                return self._to_python(result, 0)
            except ExprError:
                raise
            except Exception as err:  # noqa: BLE001 - LuaError, LuaMemoryError, conversion errors
                message = (str(err).splitlines() or [type(err).__name__])[0]
                if type(err).__name__ == "LuaMemoryError":
                    message = "memory limit exceeded"
                raise ExprError(f"lua: {message}") from None

    def _to_lua(self, value: Any) -> Any:
        if isinstance(value, dict):
            table = self._runtime.table()
            for key, item in value.items():
                table[str(key)] = self._to_lua(item)
            return table
        if isinstance(value, list):
            table = self._runtime.table()
            for index, item in enumerate(value, start=1):
                table[index] = self._to_lua(item)
            return table
        return value

    def _to_python(self, value: Any, depth: int) -> Any:
        if depth > 100:
            raise ExprError("lua: result nested too deeply")
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, bytes):
            return value.decode(errors="replace")
        type_name = self._lua_type(value)
        if type_name != "table":
            raise ExprError(f"lua: cannot convert a Lua {type_name} to JSON")
        items = list(value.items())
        keys = [key for key, _ in items]
        if items and all(isinstance(key, int) and not isinstance(key, bool) for key in keys):
            size = max(keys)
            mapping = dict(items)
            return [self._to_python(mapping.get(index), depth + 1) for index in range(1, size + 1)]
        return {
            (key.decode() if isinstance(key, bytes) else str(key)): self._to_python(item, depth + 1)
            for key, item in items
        }


@functools.lru_cache(maxsize=1)
def sandbox() -> LuaSandbox:
    """The process-wide sandbox (scripts never share state: each run gets a fresh environment)."""
    return LuaSandbox()


def _json_object(data: Any, what: str) -> dict[str, Any]:
    if isinstance(data, bytes | bytearray):
        try:
            data = json.loads(data)
        except ValueError as err:
            raise ExprError(f"{what}: event data is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ExprError(f"{what}: event data must be a JSON object")
    return data


def script_filter(script: str, data: Any) -> bool:
    """Argo's script filter: True when the script returns exactly ``true``."""
    if data is None:
        return True
    return sandbox().run(script, _json_object(data, "script filter")) is True


def script_transform(script: str, data: Any) -> Any:
    """Argo's ``transform.script``: the returned table is the new data."""
    if data is None:
        return data
    result = sandbox().run(script, _json_object(data, "script transform"))
    if not isinstance(result, dict | list):
        raise ExprError("transformation script output type is not of lua table")
    return result


@functools.lru_cache(maxsize=512)
def _jq_program(program: str) -> Any:
    try:
        import jq  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as err:  # pragma: no cover - jq is a dependency
        raise ExprError("transform.jq needs the 'jq' package") from err
    try:
        return jq.compile(program)
    except ValueError as err:
        raise ExprError(f"jq: {str(err).splitlines()[0]}") from None


def check_jq(program: str) -> str | None:
    """Why ``program`` does not compile, or ``None``."""
    try:
        _jq_program(program)
    except ExprError as err:
        return str(err)
    return None


def check_lua(script: str) -> str | None:
    """Why ``script`` does not compile, or ``None``."""
    return sandbox().check(script)


def jq_transform(program: str, data: Any) -> Any:
    """Argo's ``transform.jq``: the first output must be a JSON object; it is the new data."""
    if data is None:
        return data
    compiled = _jq_program(program)
    try:
        outputs = compiled.input_value(_json_object(data, "jq transform"))
        iterator = iter(outputs)
        result = next(iterator)
    except StopIteration:
        raise ExprError("no output available from the jq command execution") from None
    except ValueError as err:
        raise ExprError(f"jq: {str(err).splitlines()[0]}") from None
    if not isinstance(result, dict):
        raise ExprError("jq transformation output must be a JSON object")
    return result


__all__ = [
    "LuaSandbox",
    "check_jq",
    "check_lua",
    "jq_transform",
    "sandbox",
    "script_filter",
    "script_transform",
]
