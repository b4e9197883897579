# Gateway container image: reverse + forward proxy, ICAP client/server, disk cache.
#   docker build -t gateway .
#   docker run -p 8080:8080 -v gateway-data:/app/data gateway
# The build stage runs on the build machine's platform (the output is framework-dependent IL, the same for
# every architecture) and the final stage runs no command: a multi-arch build needs no emulation.

FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src

# Restore first, from the project and props files only, so the restore layer is reused until a
# package or project reference changes. (A new project under src/ must be added here.)
COPY Directory.Build.props Directory.Packages.props ./
COPY src/Gateway.Icap/Gateway.Icap.csproj src/Gateway.Icap/
COPY src/Gateway/Gateway.csproj src/Gateway/
RUN dotnet restore src/Gateway/Gateway.csproj

COPY src/ src/
RUN dotnet publish src/Gateway/Gateway.csproj -c Release -o /app --no-restore -p:UseAppHost=false \
    && mkdir -p /staging/data

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS final
WORKDIR /app

# The program and THE configuration beside it (the content root is /app): read-only for the app user.
COPY --from=build /app ./
COPY appsettings.json ./

# data/ (the cache, Gateway:Cache:Path = data/cache) is the one place the gateway writes: owned by "app".
# (COPY rather than RUN mkdir/chown: this stage runs no command, so a cross-platform build needs no emulation.)
COPY --from=build --chown=app:app /staging/ ./
VOLUME /app/data

# In a container the listeners must be reachable from outside the loopback: the proxy already binds
# 0.0.0.0:8080; the admin listener (/healthz, /readyz for kubelet probes) and the ICAP server are
# opened here. Any key of appsettings.json can be overridden the same way (":" becomes "__").
# ASPNETCORE_HTTP_PORTS is cleared: the Kestrel endpoints above are the listeners.
ENV ASPNETCORE_HTTP_PORTS= \
    Kestrel__Endpoints__Admin__Url=http://0.0.0.0:9901 \
    Gateway__Icap__Server__Listen=0.0.0.0:1344

# 8080 proxy (reverse and forward), 1344 ICAP server, 9901 admin
EXPOSE 8080 1344 9901

# The aspnet image's non-root user "app" (uid 1654).
USER $APP_UID

# The gateway's own health check command GETs the admin listener's /healthz (no curl in the image).
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 \
    CMD ["dotnet", "Gateway.dll", "healthcheck"]

ENTRYPOINT ["dotnet", "Gateway.dll"]
