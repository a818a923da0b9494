#!/usr/bin/env bash
# Resolve the Apache Kafka broker (org.apache.kafka:kafka_2.13, KRaft) and its runtime dependencies
# from Maven Central at a pinned version and cache the jars. A no-op when the jars are cached.
# tests/servers/realservers.py's `apache_kafka` fixture runs `java -cp '<lib>/*' kafka.Kafka` from
# that folder as a combined broker + controller on loopback.
#
#   scripts/kafka.sh            # resolves if needed; prints the lib folder on stdout
#   scripts/kafka.sh --check    # prints the lib folder and exits 0 when cached, else exits 1
#
# Environment:
#   EVENTBRIDGE_KAFKA_VERSION  Apache Kafka version (default below)
#   EVENTBRIDGE_KAFKA_CACHE    cache root (default ~/.cache/eventbridge/kafka)
#   EVENTBRIDGE_KAFKA_LIB      exact lib folder (default $EVENTBRIDGE_KAFKA_CACHE/<version>/lib);
#                              tests/servers/realservers.py reads the same variables
#   MVN                        maven binary (default: mvn on PATH)
#   JAVA                       java binary used for the version check (default: java on PATH)
#
# The broker needs Java 17 or newer (Kafka 4.x); the machine's default Java 17 runs it. Without
# the release tarball there is no config/log4j2.yaml: the fixture writes its own log4j2 config.
# The lib folder's .complete marker holds the version and a recipe tag (RECIPE below): bump the tag
# when the resolved set changes, so a stale cache is resolved again.
set -euo pipefail

VERSION="${EVENTBRIDGE_KAFKA_VERSION:-4.4.0}"
SCALA="2.13"
# The published kafka_2.13 pom brings slf4j-api 1.7 and log4j2 but no binding between them (the
# release tarball adds one), so the broker would log nothing: add log4j2's slf4j 1.x binding at the
# log4j version the broker's pom brings.
LOG4J_VERSION="2.25.5"
CACHE_ROOT="${EVENTBRIDGE_KAFKA_CACHE:-$HOME/.cache/eventbridge/kafka}"
RECIPE="1"
LIB="${EVENTBRIDGE_KAFKA_LIB:-$CACHE_ROOT/$VERSION/lib}"
MVN="${MVN:-mvn}"
JAVA="${JAVA:-java}"
MARKER="$LIB/.complete"

STAMP="kafka_$SCALA $VERSION recipe $RECIPE"

if [[ "$(cat "$MARKER" 2>/dev/null)" == "$STAMP" ]]; then
    echo "$LIB"
    exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
    echo "the Apache Kafka $VERSION jars are not cached at $LIB: run scripts/kafka.sh" >&2
    exit 1
fi
log() { echo "kafka: $*" >&2; }
command -v "$MVN" >/dev/null 2>&1 || { log "maven (mvn) is needed to resolve the Kafka jars (apt-get install maven)"; exit 1; }
command -v "$JAVA" >/dev/null 2>&1 || { log "java 17+ is needed to run Kafka $VERSION (apt-get install openjdk-17-jre-headless)"; exit 1; }
java_major="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
if [[ -z "$java_major" || "$java_major" -lt 17 ]]; then
    log "Kafka $VERSION needs Java 17 or newer; $JAVA is ${java_major:-unknown}"
    exit 1
fi

WORK="$(mktemp -d)"
STAGE="$LIB.tmp.$$"
trap 'rm -rf "$WORK" "$STAGE"' EXIT
# A throwaway project whose only dependency is the broker; copy-dependencies then brings the broker
# jar and its whole runtime closure (kafka-clients, kafka-server, kafka-raft, kafka-metadata,
# scala-library, jackson, log4j2, ...) into one folder.
cat >"$WORK/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>eventbridge.local</groupId>
  <artifactId>kafka-test-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA</artifactId>
      <version>$VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
start=$SECONDS
mkdir -p "$STAGE"
# (Maven 3.8 prints bare colour resets even in batch mode: strip them.)
(cd "$WORK" && "$MVN" -B -q -Dstyle.color=never -f pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$STAGE" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2)
ls "$STAGE"/kafka_"$SCALA"-"$VERSION".jar >/dev/null 2>&1 || {
    log "maven ran but kafka_$SCALA-$VERSION.jar is not in $STAGE"
    exit 1
}
echo "$STAMP" >"$STAGE/.complete"
rm -rf "$LIB"
mkdir -p "$(dirname "$LIB")"
mv "$STAGE" "$LIB"
log "Apache Kafka $VERSION: $(ls "$LIB" | wc -l) jars resolved in $((SECONDS - start))s"
echo "$LIB"
