# The operator image: only the runtime dependencies, non-root, no build tools in the final stage.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
# The operator and the in-pod runtime only: the local platform (operator/msjob_localcluster) stays out.
COPY operator/msjob_operator ./operator/msjob_operator
COPY operator/msjob_runtime ./operator/msjob_runtime
RUN python -m venv /opt/msjob \
 && /opt/msjob/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/msjob/bin/pip install --no-cache-dir '.[sdk]'

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/msjob /opt/msjob
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin msjob
USER 65532:65532
ENV PATH=/opt/msjob/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8080 8081
# The chart's Deployment passes `run --flags...` as args, which replace CMD (not ENTRYPOINT).
ENTRYPOINT ["msjob-operator"]
CMD ["run"]
