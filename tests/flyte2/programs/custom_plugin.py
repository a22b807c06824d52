# ruff: noqa: UP006, UP035, UP045 - written as flyte-sdk's plugins are, typing names included
"""A plugin written the way flyte-sdk's own plugins are: a dataclass config, a @dataclass(kw_only=True) template
subclass with plugin_config/task_type fields, pre/post hooks and custom_config(sctx), registered by config type."""
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional

import flyte
from flyte.extend import AsyncFunctionTaskTemplate, TaskPluginRegistry

EVENTS: list = []


@dataclass
class Greeter:
    greeting: str = "hello"
    times: int = 1


@dataclass(kw_only=True)
class GreeterTask(AsyncFunctionTaskTemplate):
    plugin_config: Optional[Greeter] = None
    task_type: str = "greeter"

    async def pre(self, *args, **kwargs) -> Dict[str, Any]:
        EVENTS.append(("pre", self.plugin_config.greeting))
        return {"greeting": self.plugin_config.greeting * self.plugin_config.times}

    async def post(self, return_vals: Any) -> Any:
        EVENTS.append(("post", return_vals))
        return return_vals

    def custom_config(self, sctx) -> Dict[str, Any]:
        return {"greeting": self.plugin_config.greeting, "times": self.plugin_config.times}


TaskPluginRegistry.register(Greeter, GreeterTask)

env = flyte.TaskEnvironment(name="greeter_env", plugin_config=Greeter("hi", 2))


@env.task
async def greet(name: str) -> str:
    return f"{flyte.ctx().data['greeting']} {name}"


@flyte.TaskEnvironment(name="driver", depends_on=[env]).task
async def driver(name: str) -> list[str]:
    loud = greet.override(plugin_config=Greeter("HEY"))
    return [await greet(name), await loud(name)]


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.run(driver, "ada")
    print(run.url)
    run.wait()
    print("RESULT " + json.dumps({"outputs": run.outputs()[0], "events": EVENTS, "type": greet.task_type,
                                  "config": greet.custom_config(None), "distinct": greet != greet.override()}))
