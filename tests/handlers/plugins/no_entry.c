/* A shared object that is no handler plugin at all: no entry point. */
int some_other_library_function(void);

int some_other_library_function(void) {
    return 42;
}
