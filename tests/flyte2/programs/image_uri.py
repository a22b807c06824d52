"""Print an image's URI and Dockerfile: the tag must be the same in every process for the same content."""
import json
import sys

import flyte

image = (flyte.Image.from_debian_base(python_version=(3, 12), registry="ghcr.io/acme", name="etl")
         .with_apt_packages("git", "curl")
         .with_pip_packages("pandas==2.2.3", "pyarrow")
         .with_requirements("requirements.txt")
         .with_env_vars({"MODE": "batch"})
         .with_workdir("/app")
         .with_source_file("job.py", "/app"))

env = flyte.TaskEnvironment(name="etl", image=image)

if __name__ == "__main__":
    print("RESULT " + json.dumps({"uri": image.uri, "dockerfile": image.dockerfile_text(),
                                  "base_uri": flyte.Image.from_base("python:3.12-slim").uri}))
    sys.exit(0)
