# bench/soak.cmake - the soak benchmark (soak.c, run-soak.sh) and its
# short test. Included from bench/CMakeLists.txt: include(soak.cmake).
#
# soak prints figures (keys served, errors by cause, RSS and descriptors
# at start and end): run it with bench/run-soak.sh. soak_short is a test
# of leaks, not of speed: 300 round trips per face (lib, and nss and ossl
# where the PKCS#11 module and the provider are built) with injected faults,
# no descriptor growth, RSS growth within a bound, no error but the
# injected causes.

add_executable(soak soak.c)
target_link_libraries(soak PRIVATE kmstore)
pkg_check_modules(SOAK_NSS IMPORTED_TARGET nss)
if(SOAK_NSS_FOUND)
  target_compile_definitions(soak PRIVATE SOAK_NSS)
  target_link_libraries(soak PRIVATE PkgConfig::SOAK_NSS)
endif()
# The ossl face loads the provider from its build directory at run time:
# building soak builds it too.
if(TARGET kmstore-provider)
  target_compile_definitions(soak PRIVATE SOAK_OSSL)
  target_sources(soak PRIVATE ossl_face.c)
  target_link_libraries(soak PRIVATE PkgConfig::CRYPTO)
  add_dependencies(soak kmstore-provider)
endif()

# kme-sim is defined by tests/, which the top level adds after bench/.
if(BUILD_TESTING AND EXISTS ${PROJECT_SOURCE_DIR}/tests/kme-sim/CMakeLists.txt)
  set(soak_faces lib)
  if(SOAK_NSS_FOUND AND TARGET kmstore-pkcs11)
    string(APPEND soak_faces " nss")
  endif()
  if(TARGET kmstore-provider)
    string(APPEND soak_faces " ossl")
  endif()
  # The same faces through kmstored, whose RSS and descriptors count too.
  string(REPLACE " " " daemon-" soak_daemon_faces "daemon-${soak_faces}")
  string(APPEND soak_faces " ${soak_daemon_faces}")
  # ASan's quarantine keeps freed memory, so RSS says nothing there;
  # LeakSanitizer checks for leaks at exit instead. modutil, not
  # instrumented, preloads the ASan runtime to load the module.
  set(soak_rss 1024)
  set(soak_preload "${KMSTORE_TEST_PRELOAD}")
  if(KMSTORE_SANITIZE)
    set(soak_rss 10000000)
  endif()
  add_test(NAME soak_short
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/run-soak.sh ${PROJECT_BINARY_DIR} 300)
  set_tests_properties(soak_short PROPERTIES
    LABELS "soak;faults"
    TIMEOUT 300
    ENVIRONMENT "SOAK=$<TARGET_FILE:soak>;KMSTORED=$<TARGET_FILE:kmstored>;KME_SIM=$<TARGET_FILE:kme-sim>;P11_MODULE=$<$<TARGET_EXISTS:kmstore-pkcs11>:$<TARGET_FILE:kmstore-pkcs11>>;KMSTORE_PROVIDER_DIR=$<$<TARGET_EXISTS:kmstore-provider>:$<TARGET_FILE_DIR:kmstore-provider>>;SOAK_VALGRIND=0;SOAK_TIME_CAP=120;SOAK_FACES=${soak_faces};SOAK_RSS_BOUND=${soak_rss};SOAK_PRELOAD=${soak_preload}")
endif()
