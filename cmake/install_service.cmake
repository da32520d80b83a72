# Run by `cmake --install` and by cpack (install(CODE ...) in CMakeLists.txt sets SHOAL_SOURCE_DIR,
# SHOAL_BINARY_DIR and SHOAL_BINDIR first): what makes shoal a service, with every path in it
# rewritten for the prefix of this install, not the one the build was configured with, so that
# `cmake --install build --prefix /usr` gives a unit that runs /usr/bin/shoal.
#
# Where: the prefixes a system uses (/usr, /usr/local) put the config and the logrotate file in
# /etc, the only place systemd's admin, logrotate and the unit look; any other prefix (a private
# tree such as ~/opt/shoal) keeps them under it, so an install there never writes to /etc.
# An existing config is never overwritten (an operator's edits survive a reinstall, as nginx's
# `make install` keeps nginx.conf); the shipped one is always in the doc directory beside it.
set(shoal_binary "${CMAKE_INSTALL_PREFIX}/${SHOAL_BINDIR}/shoal")
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/usr/local")
  set(shoal_etc "/etc")
else()
  set(shoal_etc "${CMAKE_INSTALL_PREFIX}/etc")
endif()
set(shoal_config "${shoal_etc}/shoal/server.toml")

set(staged "${SHOAL_BINARY_DIR}/service-files")
file(MAKE_DIRECTORY "${staged}")
foreach(name shoal.service shoal.socket shoal.logrotate)
  file(READ "${SHOAL_SOURCE_DIR}/conf/${name}" text)
  # conf/ names the paths of a by-hand install (/usr/local/bin, /etc/shoal): the installed copies
  # name this install's.
  string(REPLACE "/usr/local/bin/shoal" "${shoal_binary}" text "${text}")
  string(REPLACE "/etc/shoal/server.toml" "${shoal_config}" text "${text}")
  file(WRITE "${staged}/${name}" "${text}")
endforeach()

file(INSTALL "${staged}/shoal.service" "${staged}/shoal.socket"
     DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${SHOAL_SOURCE_DIR}/conf/shoal.tmpfiles" DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/tmpfiles.d" RENAME shoal.conf
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${staged}/shoal.logrotate" DESTINATION "${shoal_etc}/logrotate.d" RENAME shoal
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
if(EXISTS "$ENV{DESTDIR}${shoal_config}")
  message(STATUS "Kept: $ENV{DESTDIR}${shoal_config} (yours; the shipped one is in the doc directory)")
else()
  file(INSTALL "${SHOAL_SOURCE_DIR}/conf/server.production.toml" DESTINATION "${shoal_etc}/shoal" RENAME server.toml
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
