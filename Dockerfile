# The eventbridge image: one image for every role (`eventbridge up`, and later the cluster roles).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY eventbridge ./eventbridge
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 eventbridge
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /home/eventbridge
ENV EVENTBRIDGE_STATE_DIR=/home/eventbridge/state
EXPOSE 2746 12000
ENTRYPOINT ["eventbridge"]
CMD ["up", "--host", "0.0.0.0"]
