// Runs a Jenkinsfile (declarative or scripted) the way Jenkins would, as far
// as the steps our pipelines use go, and executes every step for real: `sh`
// runs its script with `sh -xe` in the workspace, `withCredentials` binds the
// secret and masks it in the log, `withEnv` and `environment {}` change the
// environment the steps get, `parallel` runs its stages at the same time (a
// thread each, with its own environment and log prefix), `catchError` records
// a failure and goes on, `junit` parses the XML reports, and
// `archiveArtifacts` copies files. A step this harness does not define fails
// the run, so a pipeline cannot pass by using something nobody executed.
//
// usage: groovy jenkins-harness.groovy JENKINSFILE WORKSPACE
// env:   HARNESS_CREDENTIALS  file of `id=secret` lines (Secret text credentials)
//        HARNESS_ARCHIVE      directory archiveArtifacts copies into
// The last line is `Finished: SUCCESS|UNSTABLE|FAILURE`; the exit code is 0
// only for SUCCESS.

import java.nio.file.FileSystems
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.Paths
import java.nio.file.StandardCopyOption
import org.codehaus.groovy.control.CompilerConfiguration

/** A failed step: the build fails, the post conditions still run. */
class StepFailed extends RuntimeException {

    StepFailed(String message) {
        super(message)
    }

}

/** The base class of the Jenkinsfile: every pipeline step is a method here. */
abstract class PipelineScript extends Script {

    static final String MASK = '****'

    String result = 'SUCCESS'
    // A stage threw: later stages are skipped. Not set by `catchError`, which
    // changes the result only, as in Jenkins.
    boolean stageFailed = false
    // Per thread, so each `parallel` branch binds and masks on its own.
    final ThreadLocal<List<Map<String, String>>> envStacks = ThreadLocal.withInitial { [] }
    final ThreadLocal<List<String>> maskLists = ThreadLocal.withInitial { [] }
    final ThreadLocal<String> branch = ThreadLocal.withInitial { '' }
    Map<String, Closure> postBodies = [:]
    List<List> stageList = null
    Object any = 'any'
    Object scm = 'scm'

    List<Map<String, String>> getEnvStack() {
        return envStacks.get()
    }

    List<String> getMasks() {
        return maskLists.get()
    }

    void setMasks(List<String> m) {
        maskLists.set(m)
    }

    Map<String, String> getEnv() {
        Map<String, String> merged = [:]
        envStack.each { merged.putAll(it) }
        return merged
    }

    Object propertyMissing(String name) {
        // Jenkins resolves bare names in Groovy against the environment.
        Map<String, String> e = getEnv()
        if (e.containsKey(name)) {
            return e[name]
        }
        throw new MissingPropertyException(name, PipelineScript)
    }

    void log(String line) {
        String shown = line
        masks.each { String m -> shown = shown.replace(m, MASK) }
        println(branch.get() + shown)
    }

    Path workspace() {
        return Paths.get(getEnv()['WORKSPACE'])
    }

    // --- declarative structure ---------------------------------------------

    void pipeline(Closure body) {
        stageList = []
        body()
        stageList.each { List s ->
            String name = s[0]
            Closure stageBody = s[1]
            if (stageFailed) {
                log("Stage \"${name}\" skipped due to earlier failure(s)")
                return
            }
            log("[Pipeline] stage (${name})")
            guarded { stageBody() }
        }
        runPost()
    }

    void agent(Object kind) {
        if (kind != 'any') {
            throw new StepFailed("agent ${kind}: this harness runs `agent any` only")
        }
    }

    void options(Closure body) {
        body()
    }

    void environment(Closure body) {
        EnvBlock block = new EnvBlock(script: this)
        body.delegate = block
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body()
        block.@vars.each { String k, Object v -> envStack[0][k] = v.toString() }
    }

    void stages(Closure body) {
        body()
    }

    void stage(String name, Closure body) {
        if (stageList == null) { // scripted: run at once
            log("[Pipeline] stage (${name})")
            body()
        } else {
            stageList << [name, body]
        }
    }

    void steps(Closure body) {
        body()
    }

    void script(Closure body) {
        body()
    }

    void post(Closure body) {
        body()
    }

    void always(Closure body) {
        postBodies.always = body
    }

    void success(Closure body) {
        postBodies.success = body
    }

    void failure(Closure body) {
        postBodies.failure = body
    }

    void unstable(Closure body) {
        postBodies.unstable = body
    }

    void runPost() {
        ['always', result.toLowerCase()].each { String cond ->
            if (postBodies[cond]) {
                log("[Pipeline] post (${cond})")
                guarded { postBodies[cond]() }
            }
        }
    }

    /** Runs a stage or post body; a failed step fails the build. */
    void guarded(Closure body) {
        try {
            body()
        } catch (StepFailed e) {
            log("ERROR: ${e.message}")
            result = 'FAILURE'
            stageFailed = true
        }
    }

    /** Declarative `parallel { stage(...) {...} ... }`: every stage at once. */
    void parallel(Closure body) {
        List<List> outer = stageList
        stageList = []
        body()
        List<List> branches = stageList
        stageList = outer
        List<Map<String, String>> stack = envStack.collect { new LinkedHashMap<>(it) }
        List<String> parentMasks = new ArrayList<>(masks)
        List<String> failed = Collections.synchronizedList([])
        List<Thread> threads = branches.collect { List b ->
            Thread.start {
                envStacks.set(stack.collect { new LinkedHashMap<>(it) })
                maskLists.set(new ArrayList<>(parentMasks))
                branch.set("[${b[0]}] ")
                log("[Pipeline] stage (${b[0]})")
                try {
                    b[1]()
                } catch (StepFailed e) {
                    log("ERROR: ${e.message}")
                    failed << b[0]
                }
            }
        }
        threads*.join()
        if (failed) {
            throw new StepFailed("parallel: failed branch(es): ${failed.sort().join(', ')}")
        }
    }

    /** A failed step sets the build (and stage) result and the pipeline goes on. */
    void catchError(Map args = [:], Closure body) {
        try {
            body()
        } catch (StepFailed e) {
            log("ERROR: ${e.message}")
            List<String> order = ['SUCCESS', 'UNSTABLE', 'FAILURE']
            String want = args.buildResult ?: 'FAILURE'
            if (order.indexOf(want) > order.indexOf(result)) {
                result = want
            }
        }
    }

    // --- scripted structure --------------------------------------------------

    void node(Closure body) {
        log('[Pipeline] node')
        guarded { body() }
    }

    void checkout(Object what) {
        // The harness's workspace is the checkout.
        log("[Pipeline] checkout ${what}: ${workspace()}")
    }

    // --- steps ---------------------------------------------------------------

    void timeout(Map args, Closure body = null) {
        if (!(args.time instanceof Integer)) {
            throw new StepFailed("timeout: time must be a number, got ${args.time}")
        }
        if (body) {
            body()
        }
    }

    void echo(String message) {
        log(message)
    }

    void error(String message) {
        throw new StepFailed(message)
    }

    Object sh(Object arg) {
        Map args = arg instanceof Map ? arg : [script: arg.toString()]
        log('[Pipeline] sh')
        File script = File.createTempFile('jenkins-sh', '.sh')
        script.text = args.script
        ProcessBuilder pb = new ProcessBuilder('sh', '-xe', script.path)
        pb.directory(workspace().toFile())
        pb.redirectErrorStream(true)
        pb.environment().clear()
        pb.environment().putAll(getEnv())
        Process p = pb.start()
        StringBuilder out = new StringBuilder()
        p.inputStream.eachLine { String l ->
            out.append(l).append('\n')
            log(l)
        }
        int code = p.waitFor()
        script.delete()
        if (args.returnStatus) {
            return code
        }
        if (code != 0) {
            throw new StepFailed("script returned exit code ${code}")
        }
        return args.returnStdout ? out.toString() : null
    }

    Map string(Map args) {
        return [kind: 'string', id: args.credentialsId, variable: args.variable]
    }

    void withCredentials(List bindings, Closure body) {
        Properties store = new Properties()
        new File(System.getenv('HARNESS_CREDENTIALS')).withInputStream { store.load(it) }
        Map<String, String> bound = [:]
        bindings.each { Map b ->
            String secret = store.getProperty(b.id)
            if (secret == null) {
                throw new StepFailed("Could not find credentials entry with ID '${b.id}'")
            }
            bound[b.variable] = secret
        }
        List<String> before = new ArrayList<>(masks)
        masks.addAll(bound.values())
        envStack << bound
        try {
            body()
        } finally {
            envStack.pop()
            masks = before
        }
    }

    void withEnv(List<String> pairs, Closure body) {
        Map<String, String> overlay = [:]
        Map<String, String> current = getEnv()
        pairs.each { String pair ->
            int eq = pair.indexOf('=')
            String name = pair.substring(0, eq)
            String value = pair.substring(eq + 1)
            int plus = name.indexOf('+')
            if (plus > 0) { // PATH+NAME=dir prepends dir
                name = name.substring(0, plus)
                value = value + File.pathSeparator + (overlay[name] ?: current[name] ?: '')
            }
            overlay[name] = value
        }
        envStack << overlay
        try {
            body()
        } finally {
            envStack.pop()
        }
    }

    List<Path> glob(String pattern) {
        Path root = workspace()
        def matcher = FileSystems.default.getPathMatcher("glob:${pattern}")
        List<Path> found = []
        Files.walk(root).each { Path p ->
            if (Files.isRegularFile(p) && matcher.matches(root.relativize(p))) {
                found << p
            }
        }
        return found.sort()
    }

    void junit(Map args) {
        List<Path> files = glob(args.testResults)
        if (files.empty && !args.allowEmptyResults) {
            throw new StepFailed("No test report files were found matching ${args.testResults}")
        }
        int tests = 0
        int failures = 0
        files.each { Path f ->
            def root = new XmlSlurper().parse(f.toFile())
            def suites = root.name() == 'testsuites' ? root.testsuite : [root]
            suites.each { s ->
                s.testcase.each { tc ->
                    tests++
                    if (tc.failure.size() > 0 || tc.error.size() > 0) {
                        failures++
                    }
                }
            }
        }
        log("junit: ${tests} tests, ${failures} failures in ${files.size()} report(s)")
        if (failures > 0 && result == 'SUCCESS') {
            result = 'UNSTABLE'
        }
    }

    void archiveArtifacts(Map args) {
        List<Path> files = glob(args.artifacts)
        if (files.empty && !args.allowEmptyArchive) {
            throw new StepFailed("No artifacts found that match the file pattern \"${args.artifacts}\"")
        }
        Path dest = Paths.get(System.getenv('HARNESS_ARCHIVE'))
        files.each { Path f ->
            Path to = dest.resolve(workspace().relativize(f))
            Files.createDirectories(to.parent)
            Files.copy(f, to, StandardCopyOption.REPLACE_EXISTING)
        }
        log("archiveArtifacts: ${files.size()} file(s)")
    }

}

/** `environment {}`: assignments collect; reads see the environment. */
class EnvBlock {

    PipelineScript script
    Map<String, Object> vars = [:]

    void setProperty(String name, Object value) {
        vars[name] = value
    }

    Object getProperty(String name) {
        if (name == 'env') {
            return script.env
        }
        return vars.containsKey(name) ? vars[name] : script.env[name]
    }

}

String jenkinsfile = args[0]
String workspace = new File(args[1]).canonicalPath
CompilerConfiguration config = new CompilerConfiguration()
config.scriptBaseClass = PipelineScript.name
GroovyShell shell = new GroovyShell(this.class.classLoader, new Binding(), config)
PipelineScript pipe = (PipelineScript) shell.parse(new File(jenkinsfile))
Map<String, String> base = new LinkedHashMap<>(System.getenv())
base.keySet().removeAll { it.startsWith('HARNESS_') }
base.WORKSPACE = workspace
pipe.envStack << base
try {
    pipe.run()
} catch (MissingMethodException e) {
    pipe.log("ERROR: unknown pipeline step '${e.method}' (the harness defines the steps our Jenkinsfiles use)")
    pipe.result = 'FAILURE'
} catch (MissingPropertyException e) {
    pipe.log("ERROR: unknown name '${e.property}' in the pipeline")
    pipe.result = 'FAILURE'
} catch (StepFailed e) {
    pipe.log("ERROR: ${e.message}")
    pipe.result = 'FAILURE'
}
println("Finished: ${pipe.result}")
System.exit(pipe.result == 'SUCCESS' ? 0 : 1)
