# A fastpath node image, built from the project's wheel (wheels/build.py: every Cython module
# compiled, repaired to a manylinux tag) so the runtime image holds no compiler.
#
#   docker build -t fastpath .
#   docker run --init -p 8443:8443/udp -p 8085:8085 -v fastpath-data:/var/lib/fastpath fastpath
#
# The image runs examples/minimal-node.yaml (control API on loopback: reach it with
# `docker exec`); mount your own config on /etc/fastpath/node.yaml, and give the control API a
# token before publishing its port.

FROM python:3.11-slim-bookworm AS wheel
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential patchelf \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir auditwheel \
 && python wheels/build.py --with-deps

FROM python:3.11-slim-bookworm
# ffmpeg for transcoded streams; nothing else beyond the wheels.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/fastpath --create-home --shell /usr/sbin/nologin fastpath \
 && chmod 0700 /var/lib/fastpath
COPY --from=wheel /src/wheels/dist /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels fastpath \
 && rm -rf /tmp/wheels
COPY examples/minimal-node.yaml /etc/fastpath/node.yaml
USER fastpath
WORKDIR /var/lib/fastpath
VOLUME /var/lib/fastpath
EXPOSE 8443/udp 8085/tcp 9480/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["fastpath"]
CMD ["serve", "-c", "/etc/fastpath/node.yaml", "--data-dir", "/var/lib/fastpath"]
