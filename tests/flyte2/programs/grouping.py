"""flyte.group, flyte.trace, flyte.report and the custom context, as flyte-sdk's examples use them."""
import json

import flyte
import flyte.remote

env = flyte.TaskEnvironment(name="grouping")


@flyte.trace
async def call_llm(prompt: str) -> str:
    return prompt.upper()


@flyte.trace
def tokenize(text: str) -> list[str]:
    return text.split()


@env.task(report=True)
async def summarize(text: str) -> str:
    await flyte.report.log.aio(f"<h2>Input</h2><p>{text}</p>", do_flush=True)
    tab = flyte.report.get_tab("details")
    tab.log(f"<p>tokens: {len(tokenize(text))}</p>")
    out = await call_llm(text)
    await flyte.report.flush.aio()
    return out


@env.task(report=True)
def sync_report(n: int) -> int:
    flyte.report.log(f"<p>n is {n}</p>")
    flyte.report.replace(f"<p>n is still {n}</p>")
    return n


@env.task
async def main(texts: list[str]) -> dict:
    with flyte.group("summaries"):
        results = [await summarize(t) for t in texts]
    with flyte.custom_context(stage="two"):
        seen = flyte.get_custom_context()
    return {"results": results, "n": await sync_report.aio(len(texts)), "context": seen,
            "run_name": flyte.ctx().action.run_name, "raw": flyte.ctx().raw_data_path.path != ""}


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.with_runcontext(custom_context={"owner": "me"}).run(main, texts=["a b", "c d e"])
    print(run.url)
    run.wait()
    details = flyte.remote.Run.get(run.name).details()
    print("RESULT " + json.dumps({"outputs": run.outputs()[0], "name": run.name, "actions": details["actions"]}))
